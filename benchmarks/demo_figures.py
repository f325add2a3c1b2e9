"""Figures for the built-in demo (issue 2): retention, int8 size and agreement, latency, side by side.

Runs `edgekd demo` into benchmarks/out/demo (reusing its teacher), checks the quality bars and writes
benchmarks/results/demo_figures.json. Usage: python benchmarks/demo_figures.py [--threads N]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import edgekd

HERE = Path(__file__).resolve().parent
BARS = {"retention": (">=", 0.97), "int8_size_ratio": ("<", 0.40), "int8_agreement_with_fp32": (">=", 0.98),
        "param_ratio": (">=", 10.0), "demo_seconds": ("<", 120.0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "out" / "demo"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = edgekd.demo(args.out, show_progress=False)
    seconds = time.perf_counter() - t0
    models, summary = res["bench"]["models"], res["bench"]["summary"]
    figures = {
        "teacher_accuracy": models["teacher_pytorch"]["accuracy"],
        "student_fp32_accuracy": models["student_fp32"]["accuracy"],
        "student_int8_accuracy": models["student_int8"]["accuracy"],
        "retention": models["student_int8"]["retention"],
        "param_ratio": res["distill"]["param_ratio"],
        "int8_size_ratio": summary["int8_size_ratio"],
        "int8_agreement_with_fp32": summary["int8_agreement_with_fp32"],
        "speedup_vs_teacher_onnx_p50": summary["speedup_vs_teacher_p50"],
        "int8_speedup_p50": summary["int8_speedup_p50"],
        "latency_p50_ms": {k: m["latency_ms"]["p50"] for k, m in models.items()},
        "latency_p99_ms": {k: m["latency_ms"]["p99"] for k, m in models.items()},
        "size_bytes": {k: m["size_bytes"] for k, m in models.items()},
        "demo_seconds": seconds, "teacher_reused": res["teacher"]["reused"],
        "host": res["bench"]["host"],
    }
    checks = {k: {"value": figures[k], "bar": f"{op} {v}",
                  "met": figures[k] >= v if op == ">=" else figures[k] < v} for k, (op, v) in BARS.items()}
    out = {"benchmark": "demo_figures", "created": res["bench"]["created"], "figures": figures, "checks": checks}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "demo_figures.json").write_text(json.dumps(out, indent=2) + "\n")
    print("| figure | value | bar | met |\n|---|---|---|---|")
    for k, c in checks.items():
        print(f"| {k} | {c['value']:.4g} | {c['bar']} | {'yes' if c['met'] else 'NO'} |")
    print("\n| model | p50 ms | p99 ms | size bytes |\n|---|---|---|---|")
    for k in models:
        print(f"| {k} | {figures['latency_p50_ms'][k]:.4f} | {figures['latency_p99_ms'][k]:.4f} | "
              f"{figures['size_bytes'][k]} |")


if __name__ == "__main__":
    main()

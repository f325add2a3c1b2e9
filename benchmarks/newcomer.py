"""The first hour (issue 25), measured: does the speed gate's verdict repeat, what does the demo print (twice),
and what does a device cost to set up and to bench a second time?

1. The same plain ONNX model (the tests' conv segmenter, 48 x 48, static u8s8 int8) quantized REPEATS times on
   this host, timed here: the gate's speed-up, its interval and its call each time, beside the decision the old
   gate took from the same ratio (written when int8's p50 was below fp32's).
2. `edgekd demo` twice into one folder: its seconds, and the figures it prints (retention, speed-ups, int8 call).
3. With OpenSSH's sshd installed: `edgekd device setup` against a throwaway sshd on 127.0.0.1 (the torch-free
   OpenVINO venv is the device's python), then `bench --on` twice: setup seconds, MB copied each time.
Usage: python benchmarks/newcomer.py [--repeats 5]  ->  results/newcomer.json (about 4 minutes)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import OUT, write_result

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import real_models  # noqa: E402

import edgekd  # noqa: E402
from edgekd.deploy.measure import host_info  # noqa: E402


def gate_repeats(repeats: int, td: Path) -> list[dict]:
    path, data = real_models.segmenter(td)
    rows = []
    for i in range(repeats):
        q = edgekd.quantize(path, data=str(data), shape=["pixels=1x3x48x48"], mode="static", preset="u8s8",
                            output=str(td / f"seg{i}.int8.onnx"), seed=i)
        sp = q.details["speed"]
        rows.append({"written": q.written, "speedup": sp["speedup"], "low": sp["low"], "high": sp["high"],
                     "call": sp["call"], "old_gate_written": sp["fp32_ms"] > sp["int8_ms"]})
        print(f"quantize #{i + 1}: {sp['speedup']:.3f}x [{sp['low']:.3f}, {sp['high']:.3f}] -> {sp['call']}, "
              f"written {q.written} (old gate: {rows[-1]['old_gate_written']})", flush=True)
    return rows


def demo_twice() -> list[dict]:
    out = OUT / "newcomer-demo"
    runs = []
    for i in range(2):
        t0 = time.perf_counter()
        res = edgekd.demo(out, show_progress=False)
        s = res["bench"]["summary"]
        runs.append({"seconds": round(time.perf_counter() - t0, 1), "teacher_reused": res["teacher"]["reused"],
                     "shipped": s["shipped"], "retention": s.get("retention"),
                     "speedup_vs_teacher": s.get("speedup_vs_teacher_p50"), "int8_call": s.get("int8_call"),
                     "int8_speedup": s.get("int8_speedup_p50"), "param_ratio": res["distill"]["param_ratio"],
                     "verdict": res["bench"]["verdict"]})
        print(f"demo #{i + 1}: {runs[-1]['seconds']} s, teacher reused {runs[-1]['teacher_reused']}; "
              + " | ".join(runs[-1]["verdict"]), flush=True)
    return runs


def device(td: Path) -> dict:
    from sshd import NoSshd, throwaway_sshd

    ov = ROOT / ".venv-openvino" / "bin" / "python"
    run = OUT / "newcomer-demo"
    try:
        with throwaway_sshd(td, env={"EDGEKD_HOME": str(td / "home")}) as (base, config):
            os.environ["EDGEKD_SSH_OPTIONS"] = f"-F {config}"
            from edgekd.api.bench import bench
            from edgekd.deploy.remote import setup

            r = setup(f"{base}?python={ov}")
            first = bench(str(run), on=base, runs=20, memory=False).report
            second = bench(str(run), on=base, runs=20, memory=False).report
    except NoSshd as e:
        return {"skipped": str(e)}
    return {"setup_seconds": r["seconds"], "mode": r["mode"], "onnxruntime": r["onnxruntime"],
            "first_copied_mb": first["overhead"]["copied_mb"], "second_copied_mb": second["overhead"]["copied_mb"],
            "second_reused_files": second["overhead"]["reused_files"],
            "first_copy_s": first["overhead"]["copy_s"], "second_copy_s": second["overhead"]["copy_s"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--gate-only", action="store_true", help="only part 1 (results/newcomer_gate.json)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        gate = gate_repeats(args.repeats, Path(td))
        if args.gate_only:
            write_result("newcomer_gate", {"benchmark": "newcomer --gate-only", "host": host_info(), "gate": gate})
            return
        demo = demo_twice()
        (Path(td) / "sshd").mkdir()
        dev = device(Path(td) / "sshd")
    print(f"device: {dev}")
    calls = {r["call"] for r in gate}
    write_result("newcomer", {"benchmark": "newcomer", "host": host_info(), "gate": gate, "gate_calls": sorted(calls),
                              "demo": demo, "device": dev})


if __name__ == "__main__":
    main()

"""Student sizing against latency budgets (issue 5).

On this machine, with the calibrated `host` profile (benchmarks/out/host.toml, made by
predictor_accuracy.py or `edgekd profiles calibrate`) and 1 thread: for three budgets run
size -> distill -> export -> quantize -> bench, and report the chosen student, its predicted and measured
int8 latency and its accuracy retention. Target: measured latency within the budget and >= 70% of it;
retention grows with the budget. Then the same search, predicted only, for raspberry-pi-4 and
jetson-orin-nano, to show the choice differs by device.

The default budgets give three different MLP students on this host: the int8 MLPs' latency is dominated by
onnxruntime's per-run overhead (~20 us), and students may not exceed the teacher's size.
Usage: python benchmarks/sizing.py [--budgets 0.05,0.065,0.08] [--family mlp]  ->  results/sizing.json
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import ARCH, OUT, demo_teacher, write_result

import edgekd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="0.05,0.065,0.08")
    ap.add_argument("--family", default="mlp")
    ap.add_argument("--profile", default=str(OUT / "host.toml"))
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    if not Path(args.profile).is_file():
        edgekd.calibrate(args.profile, name="host")
    teacher = demo_teacher()
    rows = []
    for budget in [float(b) for b in args.budgets.split(",")]:
        out = OUT / f"sizing_{budget}"
        d = edgekd.distill(teacher, "digits", out, arch=ARCH, profile=args.profile, student=args.family,
                           budget_ms=budget, threads=1, epochs=args.epochs, show_progress=False)
        edgekd.export(out)
        edgekd.quantize(out, mode="static", allow_slower=True)  # the int8 model sizing priced, fast or not
        b = edgekd.bench(out, threads=1, runs=2000, seconds=5.0, memory=False, profile=args.profile).report
        q = b["models"]["student_int8"]
        rows.append({"budget_ms": budget, "chosen": d.sizing["chosen"]["spec"], "params": d.student_params,
                     "predicted_ms": q["predicted_ms"], "measured_p50_ms": q["latency_ms"]["p50"],
                     "measured_share_of_budget": q["latency_ms"]["p50"] / budget,
                     "within_budget": q["latency_ms"]["p50"] <= budget,
                     "retention": q["retention"], "int8_accuracy": q["accuracy"], "init": d.init,
                     "candidates": len(d.sizing["candidates"])})
        print(rows[-1], flush=True)
    devices = []
    for prof in ("raspberry-pi-4", "jetson-orin-nano"):
        for budget in [float(b) for b in args.budgets.split(",")] + [0.3, 0.5]:
            try:
                r = edgekd.size(teacher, "digits", prof, arch=ARCH, student=args.family, budget_ms=budget, threads=1)
                devices.append({"profile": prof, "budget_ms": budget, "chosen": r.chosen["spec"],
                                "predicted_ms": r.chosen["predicted_ms"]})
            except edgekd.UsageError as e:  # nothing fits this device at this budget: say so
                devices.append({"profile": prof, "budget_ms": budget, "chosen": None, "predicted_ms": None,
                                "note": e.message})
            print(devices[-1], flush=True)
    write_result("sizing", {"benchmark": "sizing", "profile": args.profile, "family": args.family, "threads": 1,
                            "rows": rows, "devices": devices,
                            "target": "measured <= budget and >= 70% of it; retention grows with the budget"})
    print("\n| budget ms | chosen student | params | predicted int8 ms | measured int8 p50 ms | share of budget | "
          "retention |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['budget_ms']:g} | {r['chosen']} | {r['params']:,} | {r['predicted_ms']:.4f} | "
              f"{r['measured_p50_ms']:.4f} | {r['measured_share_of_budget']:.0%} | {r['retention']:.2%} |")
    print("\n| device | budget ms | chosen student | predicted int8 ms |\n|---|---|---|---|")
    for r in devices:
        pred = "–" if r["predicted_ms"] is None else f"{r['predicted_ms']:.4f}"
        print(f"| {r['profile']} | {r['budget_ms']:g} | {r['chosen'] or 'nothing fits: ' + r['note']} | {pred} |")


if __name__ == "__main__":
    main()

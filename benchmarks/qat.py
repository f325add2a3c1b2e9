"""Quantization-aware distillation against post-training int8 (issue 30).

Students distilled here on a real task (scikit-learn's handwritten digits upscaled to 1x32x32, the teachers of
benchmarks/pruning.py), of the kinds where PTQ loses:
- `narrow-mobilenet`: `mobilenet:width=0.35` (inverted residuals, depthwise convs, ReLU6) from the MobileNetV2-style
  teacher;
- `outlier-channels`: a small CNN whose first block's output has two channels 256x larger than the rest (as
  trained transformers and some CNNs do): one per-tensor int8 scale spends its range on them.
For each: fp32, PTQ (every preset the gate tries; the best), mixed precision (when PTQ misses the 0.5-point
gate), QAD (`quantize --qat`, default epochs) — accuracy, drop, speed-up over fp32 measured by the gate (batch 1,
1 thread, 7 interleaved rounds), minutes; and the int8 speed-up this host's calibrated profile predicted before
quantizing (`predict --int8`) against the one measured.
Usage: python benchmarks/qat.py [--epochs N] [--profile host.toml]  ->  results/qat.json (~10 min on 2 cores)
"""
from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path

from common import OUT, write_result
from pruning import digits32, teachers

import edgekd
from edgekd.deploy.measure import host_info

OUTLIER = textwrap.dedent('''
    import torch
    import torch.nn as nn


    class OutlierNet(nn.Module):
        """Conv blocks whose first output carries two channels 256x the others (a fixed per-channel gain the
        next conv undoes): the activation range one per-tensor scale must cover."""

        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
            gain = torch.ones(1, 16, 1, 1)
            gain[:, :2] = 256.0
            self.register_buffer("gain", gain)
            self.b = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU())
            self.c = nn.Sequential(nn.Conv2d(32, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU())
            self.head = nn.Linear(32, 10)
            with torch.no_grad():
                self.b[0].weight[:, :2] /= 256.0

        def forward(self, x):
            x = self.a(x) * self.gain
            return self.head(self.c(self.b(x)).mean((2, 3)))


    def student():
        return OutlierNet()
''')

STUDENTS = {"narrow-mobilenet": "mobilenet:width=0.35", "outlier-channels": None}
MAX_DROP = 0.005  # the target: QAD within half a point of fp32


def row_of(q, name: str) -> dict | None:
    return next((a for a in q.details["attempts"] if a["name"] == name), None)


def one(work: Path, data: Path, code: Path, name: str, spec: str, epochs: int, profile: str | None) -> dict:
    run = work / f"run_{name}"
    t0 = time.time()
    d = edgekd.distill(f"{code}:mobilenet", str(data), run, student=spec, epochs=epochs, method="kd",
                       force=True, show_progress=False)
    distill_s = time.time() - t0
    edgekd.export(run)
    predicted = None
    if profile:
        from edgekd.latency.predictor import predict_int8

        predicted = predict_int8(str(run / "student.onnx"), profile)["speedup"]
    # 1. the gate at half a point: does PTQ pass, and what does mixed precision keep in fp32 when it does not
    gate = edgekd.quantize(run, max_drop=MAX_DROP, allow_slower=True)
    # 2. every candidate timed (a loose gate lets all of them through), QAD among them
    t0 = time.time()
    q = edgekd.quantize(run, max_drop=1.0, allow_slower=True, qat=True)
    qad_s = time.time() - t0
    fp32 = q.details["fp32_accuracy"]
    presets = [a for a in q.details["attempts"] if not a.get("qad") and "accuracy" in a]
    best = max(presets, key=lambda a: (a["accuracy"], a.get("speedup") or 0))
    mixed = next((a for a in gate.details["attempts"] if a["fp32_nodes"] and a.get("passed")), None)
    qad = row_of(q, "qad") or {}
    out = {"student": spec, "fp32_accuracy": fp32, "teacher_accuracy": d.teacher_accuracy,
           "distill_seconds": round(distill_s, 1), "distill_epochs": epochs,
           "ptq": {a["name"]: {"accuracy": a["accuracy"], "drop": a["drop"], "speedup": a.get("speedup")}
                   for a in presets},
           "ptq_best": best["name"], "ptq_best_drop": best["drop"], "ptq_best_speedup": best.get("speedup"),
           "gate_at_half_point": {"written": gate.written, "chosen": gate.details.get("chosen")},
           "mixed": {"fp32_nodes": len(mixed["fp32_nodes"]), "drop": mixed["drop"],
                     "speedup": mixed.get("speedup")} if mixed else None,
           "qad": {"accuracy": qad.get("accuracy"), "drop": qad.get("drop"), "speedup": qad.get("speedup"),
                   "epochs": q.details["qad"]["epochs"], "seconds": round(q.details["qad"]["seconds"], 1),
                   "quantize_seconds": round(qad_s, 1), "parity": q.details["qad"]["parity"]},
           "qad_share_of_distill_time": q.details["qad"]["seconds"] / distill_s,
           "predicted_int8_speedup": predicted}
    mixed_words = f"{mixed['drop'] * 100:+.2f} pts" if mixed else "-"
    print(f"{name:17s} fp32 {fp32:.1%}  PTQ {best['name']} drop {best['drop'] * 100:+.2f} pts "
          f"{best.get('speedup') or 0:.2f}x  mixed {mixed_words}  "
          f"QAD drop {(qad.get('drop') or 0) * 100:+.2f} pts {qad.get('speedup') or 0:.2f}x in "
          f"{q.details['qad']['seconds']:.0f} s ({out['qad_share_of_distill_time']:.0%} of distill)  predicted "
          f"{predicted or 0:.2f}x", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--teacher-epochs", type=int, default=15)
    ap.add_argument("--profile", default=None, help="this host's calibrated profile (edgekd profiles calibrate)")
    ap.add_argument("--work", default=str(OUT / "qat"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = digits32(work / "digits32.npz")
    code = teachers(work, data, args.teacher_epochs)
    (work / "outlier.py").write_text(OUTLIER)
    rows = {}
    for name, spec in STUDENTS.items():
        rows[name] = one(work, data, code, name, spec or f"{work / 'outlier.py'}:student", args.epochs,
                         args.profile)
        write_result("qat", {"host": host_info(), "max_drop": MAX_DROP, "epochs": args.epochs,
                             "profile": args.profile, "rows": rows})


if __name__ == "__main__":
    main()

"""Students cut from the teacher (`--student prune`) against the generic family students (issue 29, first part).

Teachers trained here on a real task: scikit-learn's handwritten digits, upscaled to 1x32x32 (so the convs do
real work): a ResNet-style net (edgekd's `resnet` family at width 1, depth 2) and a MobileNetV2-style one
(`mobilenet`, width 1). For each, on the raspberry-pi-4 profile at `--speedup 1.5` (a student predicted at least
1.5x faster than the teacher): `--student prune` (ratio found by bisection on predicted latency) against the
teacher's own family sized by edgekd (`--student resnet` / `mobilenet`, the grid search), both distilled with
kd for the same epochs. Reported: the chosen student, parameters, predicted speed-up, accuracy and retention on
the test split, and fp32 latency on this host (teacher vs student ONNX, interleaved, 1 thread).
Usage: python benchmarks/pruning.py [--epochs N]  ->  results/pruning.json (a few minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path

import numpy as np
from common import OUT, write_result

import edgekd
from edgekd.deploy.measure import host_info, interleaved_p50
from edgekd.models.students import spec_of

TEACHERS = textwrap.dedent('''
    import pathlib
    import torch
    from edgekd.models.students import _mobilenet, _resnet

    SHAPE, CLASSES = (1, 32, 32), 10


    def resnet():
        m = _resnet(SHAPE, CLASSES, width=1.0, depth=2)
        m.load_state_dict(torch.load(pathlib.Path(__file__).with_name("resnet.pt"), weights_only=True))
        return m


    def mobilenet():
        m = _mobilenet(SHAPE, CLASSES, width=1.0)
        m.load_state_dict(torch.load(pathlib.Path(__file__).with_name("mobilenet.pt"), weights_only=True))
        return m
''')


def digits32(path: Path) -> Path:
    """The digits upscaled 4x (nearest) to 1x32x32, scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.kron(d.images / 16.0, np.ones((4, 4)))[:, None].astype(np.float32)
    np.savez(path, x=x, y=d.target.astype(np.int64))
    return path


def teachers(work: Path, data: Path, epochs: int) -> Path:
    """Train both teachers once (kept in --work)."""
    import torch

    from edgekd.data import load
    from edgekd.kd.trainer import TrainConfig, train
    from edgekd.models.students import _mobilenet, _resnet

    (work / "teachers.py").write_text(TEACHERS)
    ds = load(str(data))
    for name, make in (("resnet", lambda: _resnet((1, 32, 32), 10, width=1.0, depth=2)),
                       ("mobilenet", lambda: _mobilenet((1, 32, 32), 10, width=1.0))):
        if not (work / f"{name}.pt").is_file():
            torch.manual_seed(0)
            m = make()
            train(m, ds.x_train, ds.y_train, TrainConfig(epochs=epochs, alpha=0.0, seed=0), show_progress=False)
            torch.save(m.state_dict(), work / f"{name}.pt")
    return work / "teachers.py"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--teacher-epochs", type=int, default=15)
    ap.add_argument("--speedup", type=float, default=1.5)
    ap.add_argument("--work", default=str(OUT / "pruning"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = digits32(work / "digits32.npz")
    code = teachers(work, data, args.teacher_epochs)
    rows = {}
    for family in ("resnet", "mobilenet"):
        for student in ("prune", family):
            run = work / f"run_{family}_{student}"
            t0 = time.time()
            try:
                d = edgekd.distill(f"{code}:{family}", str(data), run, student=student, profile="raspberry-pi-4",
                                   speedup=args.speedup, epochs=args.epochs, method="kd", force=True,
                                   show_progress=False)
            except edgekd.EdgekdError as e:  # no student of that kind reaches the speed-up: an answer, recorded
                rows[f"{family}/{student}"] = {"refused": e.one_line()}
                print(f"{family:9s} {student:9s} refused: {e.one_line()}", flush=True)
                continue
            seconds = time.time() - t0
            edgekd.export(run)
            x = np.load(data)["x"][:1]
            t_ms, s_ms = interleaved_p50([run / "teacher.onnx", run / "student.onnx"], {"input": x}, threads=1,
                                         rounds=7, runs=50, max_seconds=1.0)
            sz = d.sizing or {}
            row = {"spec": spec_of(d.student), "structure": d.student.get("structure"),
                   "student_params": d.student_params, "teacher_params": d.teacher_params,
                   "predicted_speedup": sz["teacher"]["predicted_ms"] / sz["chosen"]["predicted_ms"] if sz else None,
                   "teacher_accuracy": d.teacher_accuracy, "student_accuracy": d.student_accuracy,
                   "retention": d.retention, "init": d.init, "distill_seconds": round(seconds, 1),
                   "host_p50_ms": {"teacher": t_ms, "student": s_ms}, "host_speedup": t_ms / s_ms}
            rows[f"{family}/{student}"] = row
            print(f"{family:9s} {student:9s} params {d.student_params:>8,} / {d.teacher_params:,}  predicted "
                  f"{row['predicted_speedup'] or 0:.2f}x on the Pi 4  retention {d.retention:.1%}  host "
                  f"{row['host_speedup']:.2f}x  ({d.init})", flush=True)
            write_result("pruning", {"host": host_info(), "speedup_target": args.speedup, "epochs": args.epochs,
                                     "rows": rows})


if __name__ == "__main__":
    main()

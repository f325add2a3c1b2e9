"""Distillation methods compared (issue 4): student accuracy mean +- std over 3 seeds, retention vs the
teacher, parameter and FLOPs ratios, on two tasks:

- digits: scikit-learn's digits, all training labels;
- digits-10pct: only 10% of the training labels (stratified, seed 0); the other 90% of the training images
  are an unlabeled transfer set that only the teacher can label. The CE baseline sees the 10% alone.

Usage: python benchmarks/methods_table.py [--seeds 3] [--epochs 20]  ->  benchmarks/results/methods_table.json
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
from common import ARCH, OUT, demo_teacher, write_result

import edgekd
from edgekd.data import DataOptions, load

STUDENT = "mobilenet:width=0.5,depth=0.5,expand=3"
METHODS = {"ce": "ce", "kd": "kd", "dkd": "dkd", "hint (kd+hint)": "kd+hint:1", "rkd (kd+rkd)": "kd+rkd:1",
           "kd+hint+rkd": "kd+hint:0.5+rkd:0.5"}


def ten_percent_task() -> tuple[str, str]:
    """Write the 10%-labels task: labeled.npz (x, y, x_test, y_test) and transfer.npy (unlabeled x)."""
    ds = load("digits")
    rng = np.random.default_rng(0)
    labeled = np.concatenate([rng.permutation(np.where(ds.y_train == c)[0])[:max(1, int(0.1 * (ds.y_train == c).sum()))]
                              for c in range(10)])
    rest = np.setdiff1d(np.arange(len(ds.y_train)), labeled)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUT / "digits10_labeled.npz", x=ds.x_train[labeled], y=ds.y_train[labeled], x_test=ds.x_test,
             y_test=ds.y_test)
    np.save(OUT / "digits10_transfer.npy", ds.x_train[rest])
    return str(OUT / "digits10_labeled.npz"), str(OUT / "digits10_transfer.npy")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    args = ap.parse_args()
    teacher = demo_teacher()
    labeled, transfer = ten_percent_task()
    tasks = {"digits": ("digits", None), "digits-10pct": (labeled, transfer)}
    table = []
    for task, (data, unl) in tasks.items():
        for label, method in METHODS.items():
            accs, last = [], None
            for seed in range(args.seeds):
                last = edgekd.distill(teacher, data, OUT / "methods", arch=ARCH, student=STUDENT, method=method,
                                      epochs=args.epochs, lr=1e-2, seed=seed, show_progress=False,
                                      data_options=DataOptions(unlabeled=unl))
                accs.append(last.student_accuracy)
            row = {"task": task, "method": label, "spec": method, "accuracy_mean": statistics.mean(accs),
                   "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0, "accuracies": accs,
                   "teacher_accuracy": last.teacher_accuracy,
                   "retention": statistics.mean(accs) / last.teacher_accuracy, "param_ratio": last.param_ratio,
                   "flops_ratio": last.teacher_flops / max(1, last.student_flops),
                   "student_params": last.student_params}
            table.append(row)
            print(f"{task:13s} {label:15s} {row['accuracy_mean']:.4f} +- {row['accuracy_std']:.4f} "
                  f"retention {row['retention']:.4f}", flush=True)
    write_result("methods_table", {"benchmark": "methods_table", "student": STUDENT, "epochs": args.epochs,
                                   "seeds": args.seeds, "rows": table})
    print("\n| task | method | accuracy (mean ± std, 3 seeds) | retention | params ratio | FLOPs ratio |")
    print("|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['task']} | {r['method']} | {r['accuracy_mean']:.2%} ± {r['accuracy_std']:.2%} | "
              f"{r['retention']:.2%} | {r['param_ratio']:.1f}× | {r['flops_ratio']:.1f}× |")


if __name__ == "__main__":
    main()

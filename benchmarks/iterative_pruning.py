"""Iterative pruning (`prune:steps=N`, issue 29) against one cut, at the same total epochs.

The teachers of benchmarks/probability_outputs.py (a sigmoid audio CNN over 4 events, and its softmax twin),
pruned at ratios 0.5, 0.75 and 0.9 (rounding 1, so every ratio cuts) in 1 step or 4 (each of the first 3
followed by epochs // 4 of distillation, the final student getting the rest), distilled with kd for 16 and 64
epochs in all; scored as ONNX
against the teacher's ONNX on 400 clips neither saw (label agreement for sigmoid, top-1 for softmax).
Usage: python benchmarks/iterative_pruning.py [--epochs N]  ->  results/iterative_pruning.json
"""
from __future__ import annotations

import argparse
import time

from common import OUT, write_result
from probability_outputs import prob_models, scored

import edgekd
from edgekd.deploy.measure import host_info


def main(epochs_list: list[int]) -> dict:
    root = OUT / "iterative_pruning"
    prob_models.write_teachers(root)
    rows = []
    for head, data in (("sigmoid", "audio.npz"), ("softmax", "events.npz")):
        for ratio, epochs, steps in [(r, e, s) for r in (0.5, 0.75, 0.9) for e in epochs_list for s in (1, 4)]:
            run = root / f"{head}-{ratio}-{epochs}-{steps}"
            t0 = time.perf_counter()
            res = edgekd.distill(f"{root / 'audio.py'}:{head}", str(root / data), run, epochs=epochs,
                                 student=f"prune:ratio={ratio},steps={steps},rounding=1", force=True,
                                 show_progress=False)
            took = time.perf_counter() - t0
            edgekd.export(run)
            row = {"teacher": head, "ratio": ratio, "epochs": epochs, "steps": steps, "params": res.student_params,
                   "teacher_params": res.teacher_params, "seconds": took, **scored(run, head)}
            rows.append(row)
            print(f"{head:8} ratio {ratio:<5} epochs {epochs:<3} steps {steps}  {row['params']:>6} params  "
                  f"{row['metric']} {row['agreement']:.3f}  |p_s - p_t| {row['mean_abs_prob_diff']:.4f}  {took:.0f} s",
                  flush=True)
    return {"host": host_info(), "rows": rows}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, nargs="+", default=[16, 64])
    r = main(ap.parse_args().epochs)
    print(f"wrote {write_result('iterative_pruning', r)}")

"""Teacher-output caching (issue 4): epoch time with the teacher's logits cached vs. recomputed each batch.

The digits CNN teacher has ~200x the FLOPs of the MLP student. Both runs use the same seed and settings;
with deterministic inputs the cached run must reach the same accuracy.
Usage: python benchmarks/teacher_cache.py  ->  benchmarks/results/teacher_cache.json
"""
from __future__ import annotations

import json
import statistics

from common import ARCH, OUT, demo_teacher, write_result

import edgekd


def main() -> None:
    teacher = demo_teacher()
    rows = {}
    for cache in ("memory", "off"):
        out = OUT / f"cache_{cache}"
        d = edgekd.distill(teacher, "digits", out, arch=ARCH, student="mlp:hidden=160", epochs=12, cache=cache,
                           show_progress=False)
        epochs = [json.loads(r)["epoch_seconds"] for r in (out / "metrics.jsonl").read_text().splitlines()]
        rows[cache] = {"median_epoch_s": statistics.median(epochs), "first_epoch_s": epochs[0],
                       "total_s": d.seconds, "student_accuracy": d.student_accuracy,
                       "teacher_flops": d.teacher_flops, "student_flops": d.student_flops}
    speedup = rows["off"]["median_epoch_s"] / rows["memory"]["median_epoch_s"]
    result = {"benchmark": "teacher_cache", "rows": rows, "epoch_speedup": speedup,
              "flops_ratio": rows["memory"]["teacher_flops"] / rows["memory"]["student_flops"],
              "same_accuracy": rows["memory"]["student_accuracy"] == rows["off"]["student_accuracy"],
              "target": "epoch speedup >= 3 with a teacher >= 10x the student's FLOPs, same accuracy"}
    write_result("teacher_cache", result)
    print("| cache | median epoch s | total s | student accuracy |\n|---|---|---|---|")
    for k, r in rows.items():
        print(f"| {k} | {r['median_epoch_s']:.4f} | {r['total_s']:.2f} | {r['student_accuracy']:.4f} |")
    print(f"\nepoch speed-up {speedup:.1f}x, teacher/student FLOPs {result['flops_ratio']:.0f}x, "
          f"same accuracy: {result['same_accuracy']}")


if __name__ == "__main__":
    main()

"""Teachers that output probabilities (issue 29, "outputs that are not logits"): distilled in logit space with
the matching loss (`--output-kind auto`, the default: BCE per output for sigmoid, KL of the tempered softmax of
log p for softmax) against treating their probabilities as logits (`--output-kind logits`, what edgekd did
before: the softmax of values in [0, 1] is close to uniform, and the student outputs logits where the teacher
outputs probabilities).

Teachers trained here (tests/prob_models.py): a 1-D audio CNN with a sigmoid over 4 sound events (multi-label,
unlabeled data: the teacher labels it) and the same CNN ending in softmax over which event a clip holds. Each is
distilled into `mlp:hidden=64` and into itself pruned (`prune:ratio=0.5`), exported, and the ONNX student is
scored against the teacher's ONNX on 400 clips neither saw: label agreement (each output on the teacher's side
of 0.5) for sigmoid, top-1 agreement for softmax, and the mean absolute difference of the probabilities (what a
user's app that thresholds or reads the output gets).
Usage: python benchmarks/probability_outputs.py [--epochs N]  ->  results/probability_outputs.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import HERE, OUT, write_result

sys.path.insert(0, str(HERE.parent / "tests"))  # the teachers the tests use

import prob_models  # noqa: E402

import edgekd  # noqa: E402
from edgekd.deploy.measure import host_info, label_agreement  # noqa: E402


def held_out(head: str) -> np.ndarray:
    x, y = prob_models.audio_data(400, seed=11)
    if head == "softmax":  # one event per clip, as the softmax teacher was trained
        rng = np.random.default_rng(12)
        t = np.arange(x.shape[-1]) / x.shape[-1]
        f = np.asarray(prob_models.FREQS)[rng.integers(0, 4, 400)]
        x = (np.sin(2 * np.pi * (f[:, None] * t[None] + rng.random((400, 1)))) + rng.normal(0, 0.8, (400, 128)))
        x = x[:, None].astype(np.float32)
    return x


def scored(run: Path, head: str) -> dict:
    import onnxruntime as ort

    x = held_out(head)

    def out(name):
        sess = ort.InferenceSession(str(run / name), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]
    s, t = out("student.onnx"), out("teacher.onnx")
    agree = label_agreement(t, s) if head == "sigmoid" else float((s.argmax(1) == t.argmax(1)).mean())
    return {"agreement": agree, "metric": "label_agreement" if head == "sigmoid" else "top1_agreement",
            "mean_abs_prob_diff": float(np.abs(s - t).mean()), "student_range": [float(s.min()), float(s.max())]}


def main(epochs: int) -> dict:
    root = OUT / "probability_outputs"
    prob_models.write_teachers(root)
    rows = []
    for head, data in (("sigmoid", "audio.npz"), ("softmax", "events.npz")):
        for student in ("mlp:hidden=64", "prune:ratio=0.5"):
            for kind in ("auto", "logits"):
                run = root / f"{head}-{student.split(':')[0]}-{kind}"
                res = edgekd.distill(f"{root / 'audio.py'}:{head}", str(root / data), run, student=student,
                                     epochs=epochs, output_kind=kind, force=True, show_progress=False)
                edgekd.export(run)
                row = {"teacher": head, "student": student, "output_kind": kind, **scored(run, head),
                       "student_head": res.student.get("head")}
                rows.append(row)
                print(f"{head:8} {student:16} --output-kind {kind:6}  {row['metric']} {row['agreement']:.3f}  "
                      f"|p_s - p_t| {row['mean_abs_prob_diff']:.3f}  output range {row['student_range'][0]:.2f}.."
                      f"{row['student_range'][1]:.2f}", flush=True)
    return {"host": host_info(), "epochs": epochs, "rows": rows}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=15)
    r = main(ap.parse_args().epochs)
    print(f"wrote {write_result('probability_outputs', r)}")

"""The built-in demo: train a digits teacher (or reuse it), then run the whole pipeline on it."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UsageError
from ..files import atomic_path, sha256, write_json

DEMO_ARCH = "edgekd.models.zoo:DigitsCNN"
TEACHER_CONFIG = {"arch": DEMO_ARCH, "data": "digits", "epochs": 15, "lr": 3e-3, "seed": 0, "version": 2}


def demo_teacher(out: str | os.PathLike, show_progress: bool = True) -> tuple[Path, dict]:
    """Train the digits teacher into OUT/teacher/teacher.pt, or reuse it when its config is unchanged."""
    import torch

    from .. import data
    from ..kd.trainer import TrainConfig, accuracy, predict_logits, seed_everything, train
    from ..models.zoo import DigitsCNN

    folder = Path(out) / "teacher"
    weights, meta = folder / "teacher.pt", folder / "teacher.json"
    if weights.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        if info.get("config") == TEACHER_CONFIG and info.get("sha256") == sha256(weights):
            return weights, {**info, "reused": True}
    ds = data.load("digits")
    seed_everything(TEACHER_CONFIG["seed"])
    model = DigitsCNN()
    cfg = TrainConfig(epochs=TEACHER_CONFIG["epochs"], lr=TEACHER_CONFIG["lr"], seed=TEACHER_CONFIG["seed"], alpha=0.0)
    train(model, ds.x_train, ds.y_train, cfg, label="teacher", show_progress=show_progress)
    with atomic_path(weights) as tmp:
        torch.save(model.state_dict(), str(tmp))
    info = {"config": TEACHER_CONFIG, "sha256": sha256(weights),
            "test_accuracy": accuracy(predict_logits(model, ds.x_test), ds.y_test)}
    write_json(meta, info)
    return weights, {**info, "reused": False}


def run_demo(out: str | os.PathLike = "runs/demo", profile: str = "raspberry-pi", student: str = "mlp:hidden=160",
             epochs: int = 40, show_progress: bool = True, force: bool = False) -> dict:
    """Teacher -> distil -> export -> quantize -> bench on digits; returns every step's result. Re-runnable: a
    run directory the demo made is replaced (its teacher reused); another run there only with `force`."""
    if not (force or _demo_made(Path(out))):
        raise UsageError(f"{out} holds a run the demo did not make; the demo would replace it",
                         "pass --out a new directory, or --force to replace it")
    weights, teacher_info = demo_teacher(out, show_progress)
    results = run_pipeline(str(weights), "digits", out, arch=DEMO_ARCH, profile=profile, student=student,
                           epochs=epochs, show_progress=show_progress, allow_slower=True,  # bench compares all four
                           force=True)
    return {"teacher": teacher_info, **results}


def _demo_made(out: Path) -> bool:
    """Whether OUT is new or a run the demo made (its teacher is the demo's own OUT/teacher/teacher.pt)."""
    from ..files import MANIFEST

    if not (out / MANIFEST).is_file():
        return True
    try:
        spec = json.loads((out / MANIFEST).read_text(encoding="utf-8"))["steps"]["distill"]["teacher"]["spec"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(spec, str) and Path(spec).resolve() == (out / "teacher" / "teacher.pt").resolve()


def run_pipeline(teacher: str, data: str, out: str | os.PathLike, *, show_progress: bool = True,
                 **options) -> dict:
    """distill -> export -> quantize -> bench into one run directory. Takes every option of each step
    (`edgekd.api.options`); a name two steps share (threads, profile, shape) goes to both."""
    from .bench import bench
    from .distill import distill
    from .export import export
    from .options import PIPELINE_SKIP, BenchOptions, DistillOptions, ExportOptions, QuantizeOptions, names

    known = names(DistillOptions) | names(ExportOptions) | names(QuantizeOptions) | names(BenchOptions)
    unknown = sorted(set(options) - (known - PIPELINE_SKIP))
    if unknown:
        raise UsageError(f"pipeline has no option {unknown[0]!r}", "see `edgekd pipeline --help`")

    def only(cls, **fixed):
        return {**{k: v for k, v in options.items() if k in names(cls)}, **fixed}
    from .quantize import quantize

    d = distill(teacher, data, out, show_progress=show_progress, **only(DistillOptions))
    e = export(out, trust_run=True, **only(ExportOptions))  # the teacher is the one this command was given
    q = quantize(out, **only(QuantizeOptions)).to_dict()  # int8 that does not pay is a result: fp32 recorded
    b = bench(out, trust_run=True, **only(BenchOptions, threads=options.get("threads")))
    return {"distill": d.to_dict(), "export": e.to_dict(), "quantize": q, "bench": b.report}

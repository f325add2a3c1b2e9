"""`quantize --qat`: quantization-aware distillation of a run's student, the candidate the int8 gate judges
beside the post-training ones (same accuracy gate, same speed gate, side by side in one table)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import EdgekdError, UsageError
from ..progress import say

PARITY_REL = 0.005      # mean |QDQ graph - fake-quant PyTorch| at most 0.5% of the output's spread ...
PARITY_AGREEMENT = 0.99  # ... and the same top-1 (or cosine) on 99% of the samples: a 1-LSB tie may round apart
LR_SCALE = 0.1          # fine-tuning, not training: a tenth of distill's learning rate, no warm-up


@dataclass
class QadModel:
    path: Path
    epochs: int
    seconds: float
    method: str
    samples: int
    parity: dict
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:  # the model itself is a temporary file: the gate copies the one it keeps
        return {k: v for k, v in asdict(self).items() if k != "path"}


def default_epochs(run) -> int:
    """A tenth of distill's epochs (at least one): QAD is a fine-tune from the distilled student."""
    return max(1, round(0.1 * int((run.step("distill").get("config") or {}).get("epochs", 10))))


def expected_minutes(run, epochs: int | None = None) -> float:
    """What --qat will cost here: distill's measured seconds per epoch, x1.5 for fake quantization."""
    fig = run.step("distill").get("figures") or {}
    per_epoch = float(fig.get("seconds") or 0) / max(1, int(fig.get("epochs") or 1))
    return 1.5 * per_epoch * (epochs or default_epochs(run)) / 60


def qad(run, preset: str, folder: Path, epochs: int | None = None, trust_run: bool = False,
        calib_batches: int = 8) -> QadModel:
    """Fine-tune the run's student with fake quantization against its teacher (the run's --method), export it
    as QDQ ONNX into `folder` and check that onnxruntime's int8 kernels compute what was trained."""
    from ..data import n_samples, take
    from ..deploy.export import to_onnx
    from ..deploy.quantize import PRESETS
    from ..kd import qat
    from ..models.inference import Adapted, as_args, unwrap
    from .target import load_student, read_eval, run_teacher

    dist = run.step("distill")
    if (dist.get("student") or {}).get("family") == "hf":
        raise UsageError("--qat is not supported for Hugging Face students yet (their int8 is dynamic: there are no "
                         "activation scales to learn)", "quantize without --qat: dynamic int8 of the MatMuls")
    student, spec = load_student(run, trust_run)
    notes: list[str] = []
    try:
        teacher = run_teacher(run, trust_run)
    except EdgekdError as e:
        teacher = None
        notes.append(f"no teacher for QAD ({e.one_line()}): fine-tuned on labels alone")
    x, y, where = _training_data(run, dist, notes)
    if teacher is None and (y is None or not (y >= 0).any()):
        raise UsageError("--qat needs the teacher's outputs or labels to fine-tune with, and this run has neither "
                         "(the teacher does not load and the data has no labels)",
                         "restore the teacher's code (or pass --trust-run), or quantize without --qat")
    p = PRESETS[preset]
    inner = unwrap(student)
    fq = qat.prepare(inner, as_args(take(x, slice(0, 2))), p["activation"], 7 if p["reduce_range"] else 8)
    if isinstance(student, Adapted):
        student.inner = fq
    else:
        student = fq
    n_cal = min(n_samples(x), 32 * calib_batches)
    qat.calibrate(student, [as_args(take(x, slice(i, i + 32))) for i in range(0, n_cal, 32)])
    n = epochs or default_epochs(run)
    cfg, method = _config(dist, n, teacher is not None)
    say(f"quantization-aware distillation: {n} epoch(s) of {method} on {n_samples(x)} samples ({where})")
    t0 = time.monotonic()
    trainer = _trainer(student, teacher, cfg, x, y, notes)
    trainer.fit()
    seconds = time.monotonic() - t0
    qat.freeze(student)
    path = folder / "qad.onnx"
    test, _, _, calib = read_eval(run)
    out_name = spec.get("output_name") or spec.get("output") or "logits"
    sample = calib if len(calib) > 1 or "x" not in calib else calib["x"]
    to_onnx(student, sample, path, exporter="torchscript", opset=13, output_name=out_name)
    tidied = qat.tidy(path)
    check = parity(student, path, test if len(test) > 1 or "x" not in test else test["x"])
    check.update(tidied)
    return QadModel(path, n, seconds, trainer.cfg.method, int(n_samples(x)), check, notes)


def _training_data(run, dist: dict, notes: list[str]):
    """The training split distill read (its --data, read again as it was), else the run's kept calibration
    samples (512 at most, said)."""
    from .. import data as data_mod
    from .target import as_inputs, read_eval

    rec, opts = dist.get("data") or {}, dist.get("data_options") or {}
    try:
        options = data_mod.DataOptions(**{**opts, "mean": tuple(opts.get("mean", (0.5,))),
                                          "std": tuple(opts.get("std", (0.5,)))})
        ds = data_mod.load(rec["spec"], options)
        return ds.x_train, ds.y_train, rec["spec"]
    except (EdgekdError, KeyError, TypeError, OSError) as e:
        with np.load(run.verify("eval.npz", "distill"), allow_pickle=False) as f:
            y = f["calib_labels"] if "calib_labels" in f.files else None
        notes.append(f"distill's --data could not be read again ({str(e)[:120]}): fine-tuned on the run's "
                     "calibration samples")
        return as_inputs(read_eval(run)[3]), y, "the run's calibration samples"


def _config(dist: dict, epochs: int, has_teacher: bool):
    from ..kd.trainer import TrainConfig

    known = set(TrainConfig.__dataclass_fields__)
    base = {k: v for k, v in (dist.get("config") or {}).items() if k in known}
    cfg = TrainConfig(**{**base, "epochs": epochs, "lr": float(base.get("lr", 3e-3)) * LR_SCALE,
                         "warmup_epochs": 0, "patience": 0, "cache": "off"})
    if not has_teacher:
        cfg.method = "ce"
    return cfg, cfg.method


def _trainer(student, teacher, cfg, x, y, notes: list[str]):
    """The run's method, else plain KD when its feature taps are gone (BN folded, modules fused)."""
    from ..kd.trainer import Distiller

    try:
        return Distiller(student, teacher, cfg, x, y, label="qat")
    except UsageError as e:
        if cfg.method in ("kd", "ce"):
            raise
        notes.append(f"--method {cfg.method} needs feature taps the fake-quantized student lost "
                     f"({e.message[:100]}): QAD used kd")
        cfg.method = "kd"
        return Distiller(student, teacher, cfg, x, y, label="qat")


def parity(model, onnx_path: Path, x) -> dict:
    """The exported QDQ graph against the fake-quantized PyTorch model on the test inputs, run by onnxruntime
    as written (graph optimizations off: its Q/DQ in float, what fake quantization computes), and how far
    onnxruntime's int8 kernels then round from it (reported: every int8 model has that gap, PTQ's too, and the
    accuracy gate judges the model as those kernels run it)."""
    from ..data import arrays
    from ..deploy.measure import fidelity
    from ..deploy.runtime import open_session, run_outputs
    from ..models.inference import predict
    from ..models.io import ModelIO, bind

    ref = predict(model, x)
    io = ModelIO.from_onnx(onnx_path)
    feeds = bind(io, arrays(x), source=str(onnx_path))
    name, kind = io.output_names[0], io.outputs[0].kind
    sim = run_outputs(open_session(onnx_path, level="disable"), io, feeds)[name]
    got = run_outputs(open_session(onnx_path), io, feeds)[name]
    spread = max(float(ref.std()), 1e-9)
    rel = float(np.abs(sim - ref).mean() / spread)
    agree = fidelity(ref, sim, kind)
    kernels = fidelity(sim, got, kind)
    ok = rel <= PARITY_REL and (agree is None or agree[1] >= PARITY_AGREEMENT)
    return {"samples": int(len(ref)), "max_abs_diff": float(np.abs(sim - ref).max()), "mean_rel_diff": rel,
            "agreement_metric": agree[0] if agree else None, "agreement": agree[1] if agree else None,
            "passed": ok, "tolerance": f"mean |diff| <= {PARITY_REL:.1%} of the output's std and agreement >= "
            f"{PARITY_AGREEMENT:.0%}", "int8_kernels_mean_rel_diff": float(np.abs(got - sim).mean() / spread),
            "int8_kernels_agreement": kernels[1] if kernels else None}

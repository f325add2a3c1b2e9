"""What a step works on, resolved once: a run directory or a plain .onnx file, with the data to run it.

A run directory holds what earlier steps made and recorded (manifest.json, student.pt, eval.npz: the test
split, its labels and calibration samples), so later steps need neither the user's data nor the code that
read it; a plain .onnx file takes `--data` (arrays named after its inputs) or generated inputs.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import data as data_mod
from ..errors import UsageError
from .rundir import RunDir


@dataclass
class Result:
    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Target:
    """What a step works on, resolved once: a run directory, or a plain .onnx file (with its data)."""

    path: Path
    run: RunDir | None = None

    @property
    def is_run(self) -> bool:
        return self.run is not None


def resolve(target: str | os.PathLike) -> Target:
    """A run directory (it has manifest.json) or an .onnx file; anything else is a one-line usage error."""
    from ..deploy.runtime import check_onnx_file

    path = Path(target)
    if path.is_dir() or not path.suffix:
        return Target(path, RunDir.open(path))
    if path.suffix.lower() != ".onnx" and path.is_file():
        raise UsageError(f"{path} is neither a run directory nor an .onnx file",
                         "pass a directory made by `edgekd distill --out DIR` or a model.onnx")
    check_onnx_file(path)
    return Target(path)


def run_teacher(run: RunDir, trust_run: bool = False):
    """The teacher as distill used it (its chosen output, its inputs in the data's order, its constants); the
    code its spec names runs only when `trust.check` allows it."""
    from ..models.inference import adapt
    from ..models.teachers import load_teacher
    from .trust import check, signed_fields, teacher_specs

    rec = run.step("distill").get("teacher")
    if not isinstance(rec, dict) or not rec.get("spec"):
        raise UsageError(f"{run / 'manifest.json'} has no teacher spec in its distill step",
                         "restore the manifest or rerun `edgekd distill`")
    check(rec.get("code"), *teacher_specs(rec["spec"], rec.get("arch")), extra=signed_fields(rec),
          trust_run=trust_run, where=str(run / "manifest.json"))
    # the record's trust_pickle is obeyed only as signed by this user's distill (check above), or --trust-run
    model = load_teacher(rec["spec"], rec.get("arch"), task=rec.get("task"),
                         trust_pickle=bool(rec.get("trust_pickle")))[0]
    return adapt(model, rec.get("input_names"), rec.get("output"), read_eval(run)[2])


def load_student(run: RunDir, trust_run: bool = False):
    import pickle

    import torch

    from ..models import students
    from ..models.inference import adapt

    path = run.verify("student.pt", "distill")
    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
        if blob["spec"].get("family") == "entrypoint":  # a factory named in student.pt: untrusted input too
            from .trust import check

            code = (run.step("distill").get("student") or {}).get("code")
            check(code, blob["spec"]["kwargs"]["spec"], trust_run=trust_run, where=str(path))
        if blob["spec"].get("family") == "prune":  # the teacher's own code, re-cut to the recorded sizes
            from ..models.inference import unwrap
            from ..models.prune import rebuild

            model = rebuild(unwrap(run_teacher(run, trust_run)), blob["spec"]["structure"], blob["state_dict"])
        else:
            model = students.build(blob["spec"])
            model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError, OSError, pickle.UnpicklingError) as e:
        raise UsageError(f"{path} cannot be loaded as an edgekd student ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120] if str(e) else ''})",
                         f"rerun `edgekd distill ... --out {run.path}`") from None
    spec = blob["spec"]
    return adapt(model.eval(), spec.get("input_names"), spec.get("output"), read_eval(run)[2],
                 spec.get("head")).eval(), spec


def read_eval(run: RunDir) -> tuple[dict, np.ndarray | None, dict, dict]:
    """(test inputs, labels, constants, calibration inputs) from RUN/eval.npz."""
    path = run.verify("eval.npz", "distill")
    try:
        with np.load(path, allow_pickle=False) as f:
            blob = {k: f[k] for k in f.files}
    except Exception as e:
        raise UsageError(f"{path} is not a readable .npz ({type(e).__name__})", "rerun edgekd distill") from None

    def part(prefix):
        return {k.split(":", 1)[1]: v for k, v in blob.items() if k.startswith(prefix + ":")}
    return part("test"), blob.get("labels"), part("const"), part("calib")


def as_inputs(named: dict):
    """Named arrays back to what models take: one array for a single `x`, else the dict."""
    return named["x"] if list(named) == ["x"] else named


def run_profile(run: RunDir) -> str | None:
    """The profile a run was distilled for (its .toml when it still exists, else its name): quantize and bench
    default to it, so the chain of steps targets one device."""
    recorded = run.step("distill").get("profile") or {}
    path = recorded.get("path")
    return path if path and Path(path).is_file() else recorded.get("name")


def load_profile(name: str | None):
    if name is None:
        return None
    from .. import profiles

    return profiles.load(name)


@dataclass
class ModelData:
    """Inputs for running a model: arrays by name (test split), labels, calibration arrays, constants (fed to
    the models that take them: a student exported by edgekd has them built in), and where they came from."""

    test: dict
    labels: np.ndarray | None
    calib: dict | None
    source: str
    constants: dict = field(default_factory=dict)
    calib_labels: np.ndarray | None = None  # the calibration samples' labels (-1 where unlabeled)


def model_data(target: Target, data: str | None, tokenizer: str | None = None) -> ModelData | None:
    """--data when given (text read with the model's tokenizer: --tokenizer, the run's app folder, or the one
    beside a plain model), else the run's own eval.npz (None for a plain .onnx without --data)."""
    if data is not None:
        ds = data_mod.load(data, codec=_codec(target, data, tokenizer))
        return ModelData(ds.test_arrays(), ds.y_test, ds.train_arrays(), data, calib_labels=ds.y_train)
    if target.run is None:
        return None
    test, labels, consts, calib = read_eval(target.run)
    with np.load(target.run / "eval.npz", allow_pickle=False) as f:
        calib_labels = f["calib_labels"] if "calib_labels" in f.files else None
    return ModelData(test, labels, calib, str(target.run / "eval.npz"), consts, calib_labels)


def _codec(target: Target, data: str, tokenizer: str | None):
    """The tokenizer that reads text --data, or None when the data is not text (or nothing tokenizes it)."""
    from ..data import text

    path = Path(data)
    if not (path.exists() and (text.is_text(path, data_mod.DataOptions()) or path.suffix.lower() in
                               text.TEXT_SUFFIXES and tokenizer)):
        return None
    if target.run is not None and tokenizer is None and (target.run / "student").is_dir():
        tokenizer = str(target.run / "student")  # a Hugging Face run's app folder holds its tokenizer
    model = target.path if target.run is None else target.run / "student.onnx"
    from ..models.io import ModelIO

    names = ModelIO.from_onnx(model).input_names if model.is_file() else []
    return text.codec_for_onnx(model, names, tokenizer)


def bind_data(io, md: ModelData | None, shapes: dict, what: str = "test"):
    """Feeds for `io`; without data every input is generated (and named in `feeds.generated`)."""
    from ..models.io import bind

    arrays = {} if md is None else (md.test if what == "test" else md.calib or {})
    if md is not None:
        arrays = {**arrays, **{k: v for k, v in md.constants.items() if k in io.input_names}}
    return bind(io, arrays, shapes=shapes, source=md.source if md else "generated inputs", complete=md is not None)


def feed_notes(io, feeds, path) -> list[str]:
    """What a user should know about how the model was fed: made-up inputs, a fixed batch."""
    notes = []
    if feeds.generated:
        shapes = feeds.shapes()
        notes.append(f"{Path(path).name}: no data for input(s) " + ", ".join(
            f"{n} ({'x'.join(map(str, shapes[n]))})" for n in feeds.generated) +
            "; generated values of the right dtype and shape were fed (pass --data for real ones)")
    if io.batch:
        notes.append(f"{Path(path).name}: its batch is fixed at {io.batch}; samples were fed {io.batch} at a time")
    for name, out in io.recurrent():
        notes.append(f"{Path(path).name}: input {name} is a recurrent state that output {out} carries to the next "
                     f"call; every sample was fed the {name} the data gives (one call per window, not a stream)")
    for t in io.inputs:
        ax = io.batch_axis(t)
        if ax:
            notes.append(f"{Path(path).name}: input {name_shape(t)} takes its samples on axis {ax} (where "
                         f"{io.batch_symbol!r} is); it is batched there")
    return notes


def name_shape(t) -> str:
    return f"{t.name} {t.shape_str()}"

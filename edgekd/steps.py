"""The Python API: one function per step, meeting in a run directory.

    data -> teacher -> student -> ONNX -> int8 -> bench report

Each step reads what the earlier ones recorded in RUN/manifest.json and returns a typed result; the CLI only
parses options and renders these results. `export`, `quantize` and `bench` also take a plain .onnx path.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import data as data_mod
from .errors import EdgekdError, UsageError
from .options import BenchOptions, DistillOptions, ExportOptions, QuantizeOptions
from .rundir import RunDir, atomic_path, now, sha256, write_json, write_text

DEFAULT_STUDENT = "mlp:hidden=160"
PARITY_SAMPLES = 256


@dataclass
class Result:
    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DistillResult(Result):
    run: str
    student: dict
    student_params: int
    teacher_params: int
    param_ratio: float
    teacher_accuracy: float | None
    student_accuracy: float | None
    retention: float | None
    agreement: float
    epochs: int
    seconds: float
    profile: str | None = None
    method: str = "kd"
    student_flops: int = 0
    teacher_flops: int = 0
    cache: str = "off"
    best_epoch: int | None = None
    stopped_early: bool = False
    resumed_from: int | None = None
    init: str = "random"
    sizing: dict | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ExportResult(Result):
    target: str
    models: dict[str, dict]


@dataclass
class QuantizeResult(Result):
    target: str
    output: str
    size_bytes: int
    fp32_size_bytes: int
    details: dict


@dataclass
class BenchResult(Result):
    target: str
    report: dict = field(default_factory=dict)


# ---------------------------------------------------------------- targets

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
    from .onnxutil import check_onnx_file

    path = Path(target)
    if path.is_dir() or not path.suffix:
        return Target(path, RunDir.open(path))
    if path.suffix.lower() != ".onnx" and path.is_file():
        raise UsageError(f"{path} is neither a run directory nor an .onnx file",
                         "pass a directory made by `edgekd distill --out DIR` or a model.onnx")
    check_onnx_file(path)
    return Target(path)


# ---------------------------------------------------------------- helpers shared by the steps

def _teacher(rec: dict):
    """The teacher as distill used it (its chosen output, its inputs in the data's order)."""
    from .models.teachers import load_teacher

    model = load_teacher(rec["spec"], rec.get("arch"))[0]
    return _adapt(model, rec.get("input_names"), rec.get("output"), {})


def _adapt(model, input_names: list[str] | None, output: str | None, constants: dict):
    """Wrap a model in Adapted only when it needs it (named inputs, constants, or a chosen output)."""
    from .models.inference import Adapted

    if input_names is None and output is None and not constants:
        return model
    return Adapted(model, input_names or ["input"], output, constants)


def _load_student(run: RunDir):
    import torch

    from .models import students

    path = run.verify("student.pt", "distill")
    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
        model = students.build(blob["spec"])
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError, OSError) as e:
        raise UsageError(f"{path} cannot be loaded as an edgekd student ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120] if str(e) else ''})",
                         f"rerun `edgekd distill ... --out {run.path}`") from None
    spec = blob["spec"]
    return _adapt(model.eval(), spec.get("input_names"), spec.get("output"), _eval(run)[2]).eval(), spec


def _save_student(path: Path, model, spec: dict) -> None:
    import torch

    from .models.inference import unwrap

    with atomic_path(path) as tmp:
        torch.save({"spec": spec, "state_dict": unwrap(model).state_dict()}, str(tmp))


EVAL_LIMIT_BYTES = 64 * 2**20  # test inputs kept in RUN/eval.npz (the first samples up to this size)
CALIB_KEPT = 512               # random training samples kept there for int8 calibration


def _save_eval(run: RunDir, ds: data_mod.Dataset, seed: int) -> str:
    """RUN/eval.npz: the test split, its labels and calibration samples, so that export, quantize and bench
    need neither the data nor the code that read it (and the run can be moved or sent)."""
    from .data import arrays, n_samples, take

    test = arrays(ds.x_test)
    per = sum(v[:1].nbytes for v in test.values()) or 1
    n = min(n_samples(ds.x_test), max(1, EVAL_LIMIT_BYTES // per))
    order = np.random.default_rng(seed).permutation(n_samples(ds.x_train))[:CALIB_KEPT]
    calib = arrays(take(ds.x_train, order))
    blob = {**{f"test:{k}": v[:n] for k, v in test.items()}, **{f"calib:{k}": v for k, v in calib.items()},
            **{f"const:{k}": v for k, v in ds.constants.items()}}
    if ds.y_test is not None:
        blob["labels"] = ds.y_test[:n]
    with atomic_path(run / "eval.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **blob)
    return sha256(run / "eval.npz")


def _eval(run: RunDir) -> tuple[dict, np.ndarray | None, dict, dict]:
    """(test inputs, labels, constants, calibration inputs) from RUN/eval.npz."""
    path = run.verify("eval.npz", "distill")
    try:
        with np.load(path, allow_pickle=False) as f:
            blob = {k: f[k] for k in f.files}
    except Exception as e:
        raise UsageError(f"{path} is not a readable .npz ({type(e).__name__})", f"rerun edgekd distill") from None

    def part(prefix):
        return {k.split(":", 1)[1]: v for k, v in blob.items() if k.startswith(prefix + ":")}
    return part("test"), blob.get("labels"), part("const"), part("calib")


def _inputs(named: dict):
    """Named arrays back to what models take: one array for a single `x`, else the dict."""
    return named["x"] if list(named) == ["x"] else named


def _check_teacher_fits(teacher, ds: data_mod.Dataset, output: str | None):
    """Run the teacher on two samples, adapting it to the data: named inputs, constants and a chosen output
    (tuple, dict or ModelOutput results). Integer data a float model cannot take is cast to float32 (a
    note says so). Returns (the adapted teacher, its output on the samples, the output's name)."""
    import torch

    from .data import take
    from .models.inference import call, choose, named_outputs

    names = ds.input_names
    x = take(ds.x_train, slice(0, 2))
    raw_model = teacher
    model = _adapt(teacher, names, None, ds.constants)
    try:
        with torch.inference_mode():
            raw = call(model, x)
    except Exception as e:
        cast = _cast_floats(ds)
        if cast is None:
            raise _misfit(ds, e) from None
        try:
            with torch.inference_mode():
                raw = call(model, take(ds.x_train, slice(0, 2)))
        except Exception as e2:
            raise _misfit(ds, e2) from None
        ds.notes.append(cast)
    outs = named_outputs(raw)
    chosen = choose(outs, output, "teacher")
    out = outs[chosen]
    if out.ndim != 2:
        raise UsageError(f"the teacher's output {chosen!r} has shape {tuple(out.shape)}; distillation needs "
                         "class logits of shape (N, classes)", "pick the logits with --output NAME, or wrap the "
                         "teacher so forward() returns them (outputs: " + ", ".join(
                             f"{k} {tuple(v.shape)}" for k, v in outs.items()) + ")")
    if ds.num_classes and out.shape[1] < ds.num_classes:
        raise UsageError(f"the teacher has {out.shape[1]} outputs but the data has labels up to "
                         f"{ds.num_classes - 1} ({ds.num_classes} classes)",
                         "use the teacher trained on this label set")
    need_output = not isinstance(raw, torch.Tensor) or output is not None
    adapted = _adapt(raw_model, names, chosen if need_output else None, ds.constants)
    return adapted, out.float().numpy(), chosen if need_output else None


def _cast_floats(ds: data_mod.Dataset) -> str | None:
    """Cast a single integer input to float32 (uint8 images, integer features); None when there is none."""
    if ds.input_names or np.issubdtype(ds.x_train.dtype, np.floating):
        return None
    dtype = ds.x_train.dtype
    for name in ("x_train", "x_test", "x_val"):
        if getattr(ds, name) is not None:
            setattr(ds, name, getattr(ds, name).astype(np.float32))
    return f"inputs of dtype {dtype} were cast to float32: the teacher takes floats"


def _misfit(ds: data_mod.Dataset, e: Exception) -> UsageError:
    reason = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    if ds.input_names:
        what = ", ".join(f"{k} {v.dtype} (N, {', '.join(map(str, v.shape[1:]))})" for k, v in ds.x_train.items())
        return UsageError(f"the teacher cannot take the data's inputs {what}: {reason}",
                          "name the .npz arrays after the teacher's forward() arguments, in its order")
    return UsageError(f"the teacher cannot take the data's inputs of shape (N, {', '.join(map(str, ds.input_shape))}): "
                      f"{reason}", "pass data shaped like the teacher's training inputs")


def _profile(name: str | None):
    if name is None:
        return None
    from . import profiles

    return profiles.load(name)


def _abs_spec(spec: str) -> str:
    """A teacher or data SPEC with its file made absolute, so the manifest survives moving the run."""
    path, sep, attr = spec.rpartition(":") if spec.count(":") == 1 and not Path(spec).exists() else (spec, "", "")
    p = Path(path)
    if p.exists():
        return str(p.resolve()) + sep + attr
    return spec


def _data_options(o: DistillOptions) -> data_mod.DataOptions:
    def floats(name):
        try:
            return tuple(float(v) for v in getattr(o, name).split(","))
        except ValueError:
            raise UsageError(f"--{name} must be comma-separated numbers, got {getattr(o, name)!r}",
                             f"e.g. --{name} 0.485,0.456,0.406") from None
    return data_mod.DataOptions(val_split=o.val_split, label_column=o.label_column, image_size=o.image_size,
                                channels=int(o.channels), mean=floats("mean"), std=floats("std"),
                                unlabeled=o.unlabeled)


# ---------------------------------------------------------------- distill

def distill(teacher: str, data: str, out: str | os.PathLike, *, show_progress: bool = True,
            **options) -> DistillResult:
    """Distil `teacher` into a small student on `data` (options: see `DistillOptions`, e.g. method="kd",
    student="mlp:hidden=64"); write RUN/student.pt, eval.npz, metrics.jsonl, checkpoints/ and the manifest.

    With a `profile` and no student knobs (`student` None or a bare family name), the student is sized
    first: the candidate with the most capacity whose predicted latency and peak memory fit the budgets."""
    from .kd.methods import parse
    from .kd.trainer import Distiller, TrainConfig, accuracy, seed_everything
    from .models import students
    from .models.inference import predict, unwrap
    from .models.io import ModelIO
    from .models.teachers import load_teacher
    from .options import build

    o = build(DistillOptions, options)
    parse(o.method)
    prof = _profile(o.profile)
    opts = _data_options(o)
    ds = data_mod.load(data, opts)
    traw, trec = load_teacher(teacher, o.arch)
    tmodel, t_out, t_output = _check_teacher_fits(traw, ds, o.output)
    num_classes = ds.num_classes or t_out.shape[1]
    sized = None
    if prof is not None and (o.student is None or o.student in students.FAMILIES):
        _single_input(ds, o.student or "sizing")
        sized = _search(ds, tmodel, num_classes, prof, o.student, budget_ms=o.budget_ms, memory_mb=o.memory_mb,
                        quantize=o.quantize, threads=o.threads, margin=o.margin)
    student = sized.chosen["spec"] if sized else (o.student or DEFAULT_STUDENT)
    if not students.is_entrypoint(student):
        _single_input(ds, student)
    rec = students.record(student, ds.input_shape, num_classes)
    seed_everything(o.seed)
    smodel = students.build(rec)
    s_output = _student_output(smodel, ds)
    rec.update({"input_names": ds.input_names, "output": s_output})
    smodel = _adapt(smodel, ds.input_names, s_output, ds.constants)
    _check_student_fits(smodel, ds, t_out.shape[1])
    from .sizing import init_from_teacher
    init_used = init_from_teacher(unwrap(smodel), unwrap(tmodel)) if o.init == "auto" else "random"

    augment = ds.kind == "image" if o.augment is None else o.augment
    cfg = TrainConfig(epochs=o.epochs, batch_size=o.batch_size, lr=o.lr, temperature=o.temperature, alpha=o.alpha,
                      seed=o.seed, method=o.method, feature_map=list(o.feature_map), patience=o.patience,
                      augment=augment, cache=o.cache, device=o.device)
    run = RunDir.create(out)
    if not o.resume:
        removed = run.invalidate("distill", o.force)
        if removed:
            ds.notes.append(f"removed the old student's later steps: {', '.join(removed)}")
        (run / "metrics.jsonl").unlink(missing_ok=True)
    val = (ds.x_val, ds.y_val) if ds.x_val is not None else None
    test = (ds.x_test, ds.y_test)
    trec = {**trec, "spec": _abs_spec(trec["spec"]), "input_names": ds.input_names, "output": t_output}
    if trec.get("arch"):
        trec["arch"] = _abs_spec(trec["arch"])
    fingerprint = {"teacher": trec, "data": ds.summary(), "student": rec}
    trainer = Distiller(smodel, tmodel, cfg, ds.x_train, ds.y_train, val=val, test=test, run_dir=run.path,
                        label="distil", show_progress=show_progress, fingerprint=fingerprint)
    res = trainer.fit(resume=o.resume)
    if trainer.rank != 0:
        return None  # type: ignore[return-value]  (rank 0 writes the artifacts)
    _save_student(run / "student.pt", smodel, rec)
    eval_sha = _save_eval(run, ds, o.seed)

    s_logits, t_logits = predict(smodel, ds.x_test), predict(tmodel, ds.x_test)
    has_labels = ds.y_test is not None
    teacher_acc = accuracy(t_logits, ds.y_test) if has_labels else None
    student_acc = accuracy(s_logits, ds.y_test) if has_labels else None
    sp, tp = students.count_params(smodel), students.count_params(tmodel)
    sf, tf = (students.count_flops(m, ds.input_shape) if not ds.input_names else 0 for m in (smodel, tmodel))
    io = ModelIO.from_arrays(data_mod.arrays(data_mod.take(ds.x_test, slice(0, 2))) if ds.input_names
                             else {"input": ds.x_test[:2]}, {s_output or "logits": s_logits[:2]})
    result = DistillResult(run=str(run.path), student=rec, student_params=sp, teacher_params=tp,
                           param_ratio=tp / sp, teacher_accuracy=teacher_acc, student_accuracy=student_acc,
                           retention=(student_acc / teacher_acc) if teacher_acc else None,
                           agreement=float((s_logits.argmax(-1) == t_logits.argmax(-1)).mean()),
                           epochs=len(res.history), seconds=res.seconds, profile=prof.name if prof else None,
                           method=o.method, student_flops=sf, teacher_flops=tf, cache=res.cache,
                           best_epoch=res.best_epoch, stopped_early=res.stopped_early, resumed_from=res.resumed_from,
                           init=init_used, sizing=sized.to_dict() if sized else None, notes=list(ds.notes))
    data_rec = {**ds.summary(), "spec": _abs_spec(ds.spec)}
    run.record("distill", {"teacher": trec, "data": data_rec, "data_options": asdict(opts), "notes": ds.notes,
                           "student": rec, "io": io.to_dict(), "init": init_used,
                           "sizing": sized.to_dict() if sized else None,
                           "profile": prof.summary() if prof else None, "options": asdict(o), "config": asdict(cfg),
                           "feature_map": res.feature_map, "figures": result.to_dict(),
                           "sha256": {"student.pt": sha256(run / "student.pt"), "eval.npz": eval_sha}})
    return result


def _single_input(ds: data_mod.Dataset, student: str) -> None:
    if ds.input_names:
        raise UsageError(f"the built-in student families take one input, but the data has {len(ds.input_names)} "
                         f"({', '.join(ds.input_names)}); cannot use --student {student}",
                         "pass --student file.py:factory returning a model that takes those inputs")


def _student_output(model, ds: data_mod.Dataset) -> str | None:
    """The output a user's student returns for distillation (None: a plain tensor)."""
    import torch

    from .data import take
    from .models.inference import as_args, choose, named_outputs

    if not ds.input_names:
        return None
    from .models.inference import Adapted

    try:
        with torch.inference_mode():
            raw = Adapted(model, ds.input_names, None, ds.constants).eval()(*as_args(take(ds.x_train, slice(0, 2))))
    except Exception as e:
        raise UsageError(f"the student cannot take the data's inputs ({', '.join(ds.input_names)}): "
                         f"{type(e).__name__}", "make the student's forward() take the teacher's inputs") from None
    return None if isinstance(raw, torch.Tensor) else choose(named_outputs(raw), None, "student")


def size(teacher: str, data: str, profile: str, *, arch: str | None = None, student: str | None = None,
         budget_ms: float | None = None, memory_mb: float | None = None, quantize: str = "int8",
         threads: int | None = None, data_options: data_mod.DataOptions | None = None,
         margin: float | None = None, output: str | None = None, progress=None):
    """The student-size search alone (no training): candidates, their predicted latency/memory, the choice."""
    from .models.teachers import load_teacher

    prof = _profile(profile)
    ds = data_mod.load(data, data_options or data_mod.DataOptions())
    tmodel, _ = load_teacher(teacher, arch)
    tmodel, t_out, _ = _check_teacher_fits(tmodel, ds, output)
    _single_input(ds, student or "sizing")
    return _search(ds, tmodel, ds.num_classes or t_out.shape[1], prof, student, budget_ms=budget_ms,
                   memory_mb=memory_mb, quantize=quantize, threads=threads, margin=margin, progress=progress)


def _search(ds: data_mod.Dataset, teacher, num_classes: int, prof, student: str | None, **kw):
    """Size a student of `student`'s family (or the input's default) for `prof`, smaller than the teacher."""
    from .models.students import count_params
    from .sizing import family_of, size

    if kw.get("threads") is not None and kw["threads"] < 1:
        raise UsageError(f"--threads must be >= 1, got {kw['threads']}", "e.g. --threads 1")
    return size(ds.input_shape, num_classes, prof, family=family_of(student, ds.input_shape),
                calib_x=ds.x_train[:64], teacher_params=count_params(teacher), **kw)


def _check_student_fits(student, ds: data_mod.Dataset, teacher_outputs: int) -> None:
    import torch

    from .data import take
    from .models.inference import call

    try:
        with torch.inference_mode():
            out = call(student.eval(), take(ds.x_train, slice(0, 2)))
    except Exception as e:
        raise UsageError(f"the student cannot take inputs of shape (N, {', '.join(map(str, ds.input_shape))}): "
                         f"{type(e).__name__}", "pick a student family that fits the data") from None
    if out.ndim != 2 or out.shape[1] != teacher_outputs:
        raise UsageError(f"the student outputs {tuple(out.shape[1:])} values per sample but the teacher outputs "
                         f"{teacher_outputs}", "make both models predict the same classes")


# ---------------------------------------------------------------- data for ONNX steps

@dataclass
class ModelData:
    """Inputs for running a model: arrays by name (test split), labels, calibration arrays, and where they
    came from."""

    test: dict
    labels: np.ndarray | None
    calib: dict | None
    source: str


def _model_data(target: Target, data: str | None) -> ModelData | None:
    """--data when given, else the run's own eval.npz (None for a plain .onnx without --data)."""
    if data is not None:
        ds = data_mod.load(data)
        return ModelData(ds.test_arrays(), ds.y_test, ds.train_arrays(), data)
    if target.run is None:
        return None
    test, labels, consts, calib = _eval(target.run)
    return ModelData({**test, **consts}, labels, {**calib, **consts}, str(target.run / "eval.npz"))


def _bind(io, md: ModelData | None, shapes: dict, what: str = "test"):
    """Feeds for `io`; without data every input is generated (and named in `feeds.generated`)."""
    from .models.io import bind

    arrays = {} if md is None else (md.test if what == "test" else md.calib or {})
    return bind(io, arrays, shapes=shapes, source=md.source if md else "generated inputs")


def _generated_note(feeds, path) -> list[str]:
    if not feeds.generated:
        return []
    shapes = feeds.shapes()
    return [f"{Path(path).name}: no data for input(s) " + ", ".join(
        f"{n} ({'x'.join(map(str, shapes[n]))})" for n in feeds.generated) +
        "; generated values of the right dtype and shape were fed (pass --data for real ones)"]


# ---------------------------------------------------------------- export

def export(target: str | os.PathLike, **options) -> ExportResult:
    """RUN: export student (and teacher, for the benchmark) to ONNX and check parity with PyTorch.
    A plain .onnx path: check the file loads and runs once in onnxruntime, and report its inputs and
    outputs (options: see `ExportOptions`)."""
    from .latency.graph import parse_shapes
    from .options import build

    o = build(ExportOptions, options)
    t = resolve(target)
    if not t.is_run:
        return _check_plain_onnx(t.path, parse_shapes(o.shape))
    run = t.run
    dist = run.step("distill")
    student, spec = _load_student(run)
    test, _, _, calib = _eval(run)
    x, sample = _inputs({k: v[:PARITY_SAMPLES] for k, v in test.items()}), _inputs(calib)
    out_name = spec.get("output") or "logits"
    models = {"student": _export_checked(student, sample, x, run / "student.onnx", o.exporter, out_name)}
    try:  # the teacher is only needed for the benchmark: a teacher that will not load or export is a note
        teacher = _teacher(dist["teacher"])
        try:
            models["teacher"] = _export_checked(teacher, sample, x, run / "teacher.onnx", o.exporter, out_name)
        except EdgekdError:
            models["teacher"] = _export_checked(teacher, sample, x, run / "teacher.onnx", "torchscript", out_name)
    except EdgekdError as e:
        models["teacher"] = {"error": e.one_line()}
    shas = {f"{k}.onnx": m["sha256"] for k, m in models.items() if "sha256" in m}
    run.record("export", {"exporter": o.exporter, "models": models, "sha256": shas})
    return ExportResult(str(run.path), models)


def _check_plain_onnx(path: Path, shapes: dict) -> ExportResult:
    from .models.io import ModelIO
    from .onnxutil import open_session, run_outputs

    io = ModelIO.from_onnx(path)
    feeds = _bind(io, None, shapes)
    sess = open_session(path)
    outs = run_outputs(sess, io, feeds.take(slice(0, 1)) if feeds.samples else feeds)
    io = io.observed(outs)
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    info = {"path": str(path), "opset": opset, "io": io.to_dict(), "batch": io.batch or "dynamic",
            "input_shape": list(io.inputs[0].shape) if io.inputs else [],
            "ran_with": feeds.shapes(), "output_shapes": {k: list(v.shape) for k, v in outs.items()},
            "size_bytes": os.path.getsize(path), "sha256": sha256(path),
            "notes": [f"ran once on generated inputs ({', '.join(feeds.generated)})"] if feeds.generated else []}
    return ExportResult(str(path), {"model": info})


def _export_checked(model, sample, x, path: Path, exporter: str, output_name: str) -> dict:
    """Export to `path` only if ONNX Runtime matches PyTorch on `x` (else nothing is written)."""
    from .onnx_export import parity, to_onnx

    with atomic_path(path) as tmp:
        to_onnx(model, sample, tmp, exporter=exporter, output_name=output_name)
        check = parity(model, tmp, x)
        if not check["passed"]:
            raise EdgekdError(f"{path.name}: ONNX Runtime differs from PyTorch by up to "
                              f"{check['max_abs_diff']:.3g} (rtol {check['rtol']}, atol {check['atol']})",
                              "try --exporter torchscript, or report the model")
    return {"path": path.name, "exporter": exporter, "parity": check, "size_bytes": os.path.getsize(path),
            "sha256": sha256(path)}


# ---------------------------------------------------------------- quantize

def quantize(target: str | os.PathLike, *, seed: int = 0, **options) -> QuantizeResult:
    """Quantize the exported student (or a plain .onnx) to int8, keeping it only if it passes the gate
    (options: see `QuantizeOptions`)."""
    from .int8 import calibration_feeds, gated_quantize, host_preset
    from .latency.graph import parse_shapes
    from .models.io import ModelIO
    from .options import build

    o = build(QuantizeOptions, options)
    t = resolve(target)
    shapes = parse_shapes(o.shape)
    run, prof_preset = t.run, None
    if run is None:
        src = t.path
        if o.data is None:
            raise UsageError(f"quantizing {src} needs --data SPEC (calibration and the accuracy gate use it)",
                             "pass --data digits or --data file.npz (arrays named after the model's inputs)")
        dst = Path(o.output) if o.output else src.with_name(src.stem + ".int8.onnx")
        _refuse_run_artifact(src, dst, o.output)
    else:
        dist = run.step("distill")
        src = run.verify("student.onnx", "export")
        dst = Path(o.output) if o.output else run / "student.int8.onnx"
        prof_preset = (dist.get("profile") or {}).get("int8_preset")
    if dst.is_dir():
        raise UsageError(f"--output {dst} is a directory", f"pass a file path, e.g. {dst / 'model.int8.onnx'}")
    md = _model_data(t, o.data)
    io = ModelIO.from_onnx(src)
    eval_feeds = _bind(io, md, shapes)
    calib_feeds = _bind(io, md, shapes, "calib")
    rng = np.random.default_rng(seed)
    calib_feeds = calib_feeds.take(rng.permutation(len(calib_feeds))[:o.calib_samples])
    chosen = o.preset or prof_preset or host_preset()
    details = gated_quantize(src, dst, o.mode, chosen, io, calibration_feeds(io, calib_feeds), eval_feeds,
                             md.labels, o.max_drop)
    details["preset_source"] = "--preset" if o.preset else ("profile" if prof_preset else "host CPU")
    details["notes"] = _generated_note(eval_feeds, src) + (
        [f"{src.name}: its batch is fixed at {io.batch}; samples were fed {io.batch} at a time"] if io.batch else [])
    res = QuantizeResult(str(target), str(dst), os.path.getsize(dst), os.path.getsize(src), details)
    if run is not None:
        run.record("quantize", {**res.to_dict(), "output": run.rel(dst), "calib_samples": int(len(calib_feeds)),
                                "sha256": {"student.int8.onnx": sha256(dst)} if dst == run / "student.int8.onnx"
                                else {}})
    return res


def _refuse_run_artifact(src: Path, dst: Path, explicit: str | None) -> None:
    """`quantize runs/x/student.onnx` must not silently replace the run's own student.int8.onnx."""
    from .rundir import MANIFEST

    if explicit is None and (src.parent / MANIFEST).is_file() and dst.exists():
        raise UsageError(f"{dst} belongs to the run directory {src.parent} and would be replaced",
                         f"quantize the run (`edgekd quantize {src.parent}`) or pass --output PATH")


# ---------------------------------------------------------------- bench

def bench(target: str | os.PathLike, *, warmup: int = 20, max_seconds: float = 3.0, **options) -> BenchResult:
    """Benchmark every model in RUN (teacher PyTorch/ONNX, student fp32/int8) side by side on ORT CPU, on
    the same real inputs for accuracy, timing and memory (options: see `BenchOptions`).
    With a profile, each ONNX model also gets its predicted latency; when the profile was calibrated on
    this machine, the prediction's error against the measurement too. spin=False turns onnxruntime's
    idle-thread spinning off, as calibration times kernels (it matters from 2 threads on)."""
    from . import measure as B
    from .latency.graph import parse_shapes
    from .models.io import ModelIO
    from .onnxutil import open_session, run_outputs
    from .options import build

    o = build(BenchOptions, options)
    t = resolve(target)
    shapes = parse_shapes(o.shape)
    run = t.run
    onnx_models: dict[str, Path] = {}
    teacher, notes = None, []
    if run is None:
        onnx_models["model"] = t.path
    else:
        dist = run.step("distill")
        onnx_models["student_fp32"] = run.verify("student.onnx", "export")
        if (run / "teacher.onnx").is_file():
            onnx_models["teacher_onnx"] = run.verify("teacher.onnx", "export")
        if (run / "student.int8.onnx").is_file():
            onnx_models["student_int8"] = run.verify("student.int8.onnx", "quantize")
        try:
            teacher = _teacher(dist["teacher"])
        except EdgekdError as e:
            notes.append(f"teacher_pytorch left out: {e.one_line()}")
    md = _model_data(t, o.data)
    labels = md.labels if md else None
    common = {"threads": o.threads, "batch": o.batch}
    models: dict[str, dict] = {}
    ref_out, teacher_acc, student_fp32_out = None, None, None
    if teacher is not None:
        ref_io = ModelIO.from_onnx(onnx_models["student_fp32"])
        feeds = _bind(ref_io, md, shapes)
        logits = _torch_predict(teacher, feeds)
        ref_out = logits
        teacher_acc = B.score(logits, "logits", labels, None, None)["accuracy"]
        timing = B.feeds_for_timing(ref_io, feeds, o.batch)
        models["teacher_pytorch"] = {"runtime": "pytorch", **common,
                                     "latency_ms": B.torch_latency(teacher, timing, o.threads, warmup, o.runs,
                                                                   max_seconds),
                                     "size_bytes": sum(p.numel() * p.element_size() for p in teacher.parameters()),
                                     **B.score(logits, "logits", labels, ref_out, teacher_acc)}
    for key, path in onnx_models.items():
        check_path = path
        io = ModelIO.from_onnx(check_path)
        feeds = _bind(io, md, shapes)
        notes += _generated_note(feeds, path)
        if io.batch:
            notes.append(f"{path.name}: its batch is fixed at {io.batch}; samples were fed {io.batch} at a time")
        sess = open_session(path, o.threads, spin=o.spin)  # one session scores and times the model
        outs = run_outputs(sess, io, feeds)
        io = io.observed(outs)
        spec = io.primary()
        out = outs[spec.name]
        timing = B.feeds_for_timing(io, feeds, o.batch)
        lat = B.onnx_latency(sess, timing, warmup, o.runs, max_seconds)
        if lat["runs"] < o.runs:
            notes.append(f"{key}: {lat['runs']} timed runs (the {max_seconds:g} s cap)")
        row = {"runtime": "onnxruntime", "path": str(path), "provider": lat.pop("provider"), **common,
               "inputs": {k: list(v.shape) for k, v in timing[0].items()}, "output": spec.name,
               "output_kind": spec.kind, "latency_ms": lat, "size_bytes": os.path.getsize(path),
               **B.score(out, spec.kind, labels, ref_out, teacher_acc)}
        if key == "student_fp32":
            student_fp32_out = out
        if key == "student_int8" and student_fp32_out is not None:
            f = B.fidelity(student_fp32_out, out, spec.kind)
            row["agreement_with_student_fp32"] = f[1] if f else None
        if o.memory:
            row["memory"] = B.peak_memory(path, o.threads, timing[0])
        models[key] = row
    if "teacher_pytorch" in models:
        models["teacher_pytorch"]["provider"] = models["teacher_pytorch"]["latency_ms"].pop("provider")
    prediction = _predictions(o.profile, onnx_models, models, o.threads, o.batch, shapes) if o.profile else None
    report = {"schema_version": B.BENCH_SCHEMA_VERSION, "created": now(), "target": str(target),
              "host": B.host_info(), "settings": {**common, "runs": o.runs, "warmup": warmup, "spin": o.spin},
              "data": md.source if md else None, "models": models, "summary": _summary(models),
              "prediction": prediction, "notes": notes}
    if run is not None:
        write_json(run / "bench.json", report)
        write_text(run / "report.md", render_markdown(report))
        run.record("bench", {"settings": report["settings"], "summary": report["summary"], "notes": notes})
    return BenchResult(str(target), report)


def _torch_predict(model, feeds) -> np.ndarray:
    """A PyTorch model's output over bound feeds (its inputs in the ONNX model's order)."""
    from .models.inference import predict

    return predict(model, dict(feeds.samples) if len(feeds.samples) > 1 else next(iter(feeds.samples.values())))


def _predictions(profile: str, paths: dict, models: dict, threads: int, batch: int, shapes: dict) -> dict:
    """Predicted latency per ONNX model; the error vs measured only when the profile is this machine."""
    import platform

    from .latency.predictor import predict_latency

    prof = _profile(profile)
    host = (prof.data.get("calibration") or {}).get("host")
    here = host is not None and host == platform.node()
    for key, path in paths.items():
        inputs = {k: v for k, v in models[key].get("inputs", {}).items()}
        pred = predict_latency(str(path), prof, threads=threads, batch=batch, shapes=inputs or shapes).latency_ms
        models[key]["predicted_ms"] = pred
        if here:
            models[key]["prediction_error"] = pred / models[key]["latency_ms"]["p50"] - 1
    return {"profile": prof.name, "is_this_machine": here,
            "note": None if here else f"{prof.name} is not this machine: compare the predictions with "
                                      "measurements taken on the device (edgekd bench there)"}


def _summary(models: dict) -> dict:
    """Headline ratios: student vs teacher (ONNX), int8 vs fp32."""
    out: dict[str, Any] = {}
    t, s, q = models.get("teacher_onnx"), models.get("student_fp32"), models.get("student_int8")
    best = q or s
    if t and best:
        out["size_ratio_vs_teacher"] = best["size_bytes"] / t["size_bytes"]
        out["speedup_vs_teacher_p50"] = t["latency_ms"]["p50"] / best["latency_ms"]["p50"]
        out["retention"] = best.get("retention")
    if s and q:
        out["int8_size_ratio"] = q["size_bytes"] / s["size_bytes"]
        out["int8_speedup_p50"] = s["latency_ms"]["p50"] / q["latency_ms"]["p50"]
        out["int8_agreement_with_fp32"] = q.get("agreement_with_student_fp32")
    return out


def render_markdown(report: dict) -> str:
    s = report["settings"]
    lines = [f"# edgekd benchmark: {report['target']}", "",
             f"Host: {report['host'].get('cpu', '?')} ({report['host'].get('cpu_count')} CPUs), onnxruntime "
             f"{report['host']['onnxruntime']}; batch {s['batch']}, {s['threads']} thread(s), {s['warmup']} warm-up, "
             f"up to {s['runs']} timed runs. Created {report['created']}.", "",
             "| model | runtime | p50 ms | p90 ms | p99 ms | size KB | peak RSS MB | accuracy | retention | agreement |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f="{:.2%}": "–" if v is None else f.format(v)  # noqa: E731
    for name, m in report["models"].items():
        lat = m["latency_ms"]
        peak = (m.get("memory") or {}).get("peak_rss_mb")
        lines.append(f"| {name} | {m['runtime']} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | "
                     f"{m['size_bytes'] / 1024:.1f} | {fmt(peak, '{:.0f}')} | {fmt(m['accuracy'])} | "
                     f"{fmt(m['retention'])} | {fmt(m['agreement'])} |")
    if report["summary"]:
        lines += ["", "Summary: " + ", ".join(f"{k} {v:.3f}" for k, v in report["summary"].items() if v is not None)]
    return "\n".join(lines) + "\n"

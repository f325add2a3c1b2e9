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


# ---------------------------------------------------------------- helpers shared by the steps

def _teacher(rec: dict):
    from .models.teachers import load_teacher

    return load_teacher(rec["spec"], rec.get("arch"))[0]


def _load_student(run: RunDir):
    import torch

    from .models import students

    path = run.require("student.pt")
    blob = torch.load(str(path), map_location="cpu", weights_only=True)
    model = students.build(blob["spec"])
    model.load_state_dict(blob["state_dict"])
    return model.eval(), blob["spec"]


def _save_student(path: Path, model, spec: dict) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save({"spec": spec, "state_dict": model.state_dict()}, str(tmp))


def _check_teacher_fits(teacher, ds: data_mod.Dataset) -> np.ndarray:
    """Run the teacher on a few samples: wrong input shape or too few outputs is a clear usage error."""
    import torch

    x = torch.from_numpy(ds.x_train[:2])
    try:
        with torch.inference_mode():
            out = teacher(x)
    except Exception as e:
        raise UsageError(f"the teacher cannot take the data's inputs of shape (N, {', '.join(map(str, ds.input_shape))}): "
                         f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}",
                         "pass data shaped like the teacher's training inputs") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UsageError(f"the teacher returned {shape}; expected logits of shape (N, classes)",
                         "wrap the teacher so forward() returns a (N, C) tensor")
    if ds.num_classes and out.shape[1] < ds.num_classes:
        raise UsageError(f"the teacher has {out.shape[1]} outputs but the data has labels up to "
                         f"{ds.num_classes - 1} ({ds.num_classes} classes)",
                         "use the teacher trained on this label set")
    return out.numpy()


def _profile(name: str | None):
    if name is None:
        return None
    from . import profiles

    return profiles.load(name)


# ---------------------------------------------------------------- distill

def distill(teacher: str, data: str, out: str | os.PathLike, *, arch: str | None = None,
            profile: str | None = None, student: str | None = None, epochs: int = 30,
            temperature: float = 4.0, alpha: float = 0.9, seed: int = 0, batch_size: int = 64,
            lr: float = 3e-3, method: str = "kd", feature_map: list[str] | None = None, patience: int = 0,
            augment: bool | None = None, cache: str = "auto", device: str = "auto", resume: bool = False,
            data_options: data_mod.DataOptions | None = None, budget_ms: float | None = None,
            memory_mb: float | None = None, quantize: str = "int8", threads: int | None = None,
            init: str = "auto", margin: float | None = None, show_progress: bool = True) -> DistillResult:
    """Distil `teacher` into a small student on `data` with `method` (e.g. "kd", "kd+hint:0.5");
    write RUN/student.pt, metrics.jsonl, checkpoints/ and the manifest.

    With a `profile` and no student knobs (`student` None or a bare family name), the student is sized
    first: the candidate with the most capacity whose predicted latency and peak memory fit the budgets."""
    from .kd.methods import parse
    from .kd.trainer import Distiller, TrainConfig, accuracy, predict_logits, seed_everything
    from .models import students
    from .models.teachers import load_teacher

    if epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {epochs}", "e.g. --epochs 30")
    if temperature <= 0:
        raise UsageError(f"--temperature must be > 0, got {temperature}", "typical values are 1-8")
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"--alpha must be in [0, 1], got {alpha}", "alpha weights the teacher's soft targets")
    if batch_size < 2 or lr <= 0 or patience < 0:
        raise UsageError(f"--batch-size must be >= 2, --lr > 0 and --patience >= 0 (got {batch_size}, {lr}, "
                         f"{patience})", "e.g. --batch-size 64 --lr 0.003")
    if cache not in ("auto", "memory", "disk", "off") or device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--cache {cache!r} / --device {device!r} not understood",
                         "--cache auto|memory|disk|off, --device auto|cpu|cuda")
    parse(method)
    prof = _profile(profile)
    opts = data_options or data_mod.DataOptions()
    ds = data_mod.load(data, opts)
    tmodel, trec = load_teacher(teacher, arch)
    t_out = _check_teacher_fits(tmodel, ds)
    num_classes = ds.num_classes or t_out.shape[1]
    sized = None
    if prof is not None and (student is None or student in students.FAMILIES):
        sized = _search(ds, tmodel, num_classes, prof, student, budget_ms=budget_ms, memory_mb=memory_mb,
                        quantize=quantize, threads=threads, margin=margin)
        student = sized.chosen["spec"]
    rec = students.record(student or DEFAULT_STUDENT, ds.input_shape, num_classes)
    seed_everything(seed)
    smodel = students.build(rec)
    _check_student_fits(smodel, ds, t_out.shape[1])
    if init not in ("auto", "random"):
        raise UsageError(f"--init must be auto or random, got {init!r}", "auto copies teacher weights where it can")
    from .sizing import init_from_teacher
    init_used = init_from_teacher(smodel, tmodel) if init == "auto" else "random"

    augment = ds.kind == "image" if augment is None else augment
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, temperature=temperature, alpha=alpha, seed=seed,
                      method=method, feature_map=list(feature_map or []), patience=patience, augment=augment,
                      cache=cache, device=device)
    run = RunDir.create(out)
    if not resume:
        (run / "metrics.jsonl").unlink(missing_ok=True)
    val = (ds.x_val, ds.y_val) if ds.x_val is not None else None
    test = (ds.x_test, ds.y_test)
    fingerprint = {"teacher": trec, "data": ds.summary(), "student": rec}
    trainer = Distiller(smodel, tmodel, cfg, ds.x_train, ds.y_train, val=val, test=test, run_dir=run.path,
                        label="distil", show_progress=show_progress, fingerprint=fingerprint)
    res = trainer.fit(resume=resume)
    if trainer.rank != 0:
        return None  # type: ignore[return-value]  (rank 0 writes the artifacts)
    _save_student(run / "student.pt", smodel, rec)

    s_logits, t_logits = predict_logits(smodel, ds.x_test), predict_logits(tmodel, ds.x_test)
    has_labels = ds.y_test is not None
    teacher_acc = accuracy(t_logits, ds.y_test) if has_labels else None
    student_acc = accuracy(s_logits, ds.y_test) if has_labels else None
    sp, tp = students.count_params(smodel), students.count_params(tmodel)
    sf, tf = students.count_flops(smodel, ds.input_shape), students.count_flops(tmodel, ds.input_shape)
    result = DistillResult(run=str(run.path), student=rec, student_params=sp, teacher_params=tp,
                           param_ratio=tp / sp, teacher_accuracy=teacher_acc, student_accuracy=student_acc,
                           retention=(student_acc / teacher_acc) if teacher_acc else None,
                           agreement=float((s_logits.argmax(-1) == t_logits.argmax(-1)).mean()),
                           epochs=len(res.history), seconds=res.seconds, profile=prof.name if prof else None,
                           method=method, student_flops=sf, teacher_flops=tf, cache=res.cache,
                           best_epoch=res.best_epoch, stopped_early=res.stopped_early, resumed_from=res.resumed_from,
                           init=init_used, sizing=sized.to_dict() if sized else None)
    run.record("distill", {"teacher": trec, "data": ds.summary(), "data_options": asdict(opts), "notes": ds.notes,
                           "student": rec, "init": init_used, "sizing": sized.to_dict() if sized else None,
                           "profile": prof.summary() if prof else None, "config": asdict(cfg),
                           "feature_map": res.feature_map, "figures": result.to_dict(),
                           "student_sha256": sha256(run / "student.pt")})
    return result


def size(teacher: str, data: str, profile: str, *, arch: str | None = None, student: str | None = None,
         budget_ms: float | None = None, memory_mb: float | None = None, quantize: str = "int8",
         threads: int | None = None, data_options: data_mod.DataOptions | None = None,
         margin: float | None = None, progress=None):
    """The student-size search alone (no training): candidates, their predicted latency/memory, the choice."""
    from .models.teachers import load_teacher

    prof = _profile(profile)
    ds = data_mod.load(data, data_options or data_mod.DataOptions())
    tmodel, _ = load_teacher(teacher, arch)
    t_out = _check_teacher_fits(tmodel, ds)
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

    try:
        with torch.inference_mode():
            out = student.eval()(torch.from_numpy(ds.x_train[:2]))
    except Exception as e:
        raise UsageError(f"the student cannot take inputs of shape (N, {', '.join(map(str, ds.input_shape))}): "
                         f"{type(e).__name__}", "pick a student family that fits the data") from None
    if out.ndim != 2 or out.shape[1] != teacher_outputs:
        raise UsageError(f"the student outputs {tuple(out.shape[1:])} values per sample but the teacher outputs "
                         f"{teacher_outputs}", "make both models predict the same classes")


def _run_data(dist: dict) -> data_mod.Dataset:
    """The data a run was distilled on, read again with the options it recorded."""
    opts = data_mod.DataOptions(**{**dist.get("data_options", {}), "val_split": 0.0, "unlabeled": None})
    return data_mod.load(dist["data"]["spec"], opts)


# ---------------------------------------------------------------- export

def export(target: str | os.PathLike, *, exporter: str = "dynamo") -> ExportResult:
    """RUN: export student (and teacher, for the benchmark) to ONNX and check parity with PyTorch.
    A plain .onnx path: check the file loads and runs in onnxruntime."""
    from .onnxutil import check_onnx_file, input_shape, session

    if str(target).endswith(".onnx"):
        model = check_onnx_file(target)
        session(target)
        return ExportResult(str(target), {"model": {"path": str(target), "opset": model.opset_import[0].version,
                                                    "input_shape": input_shape(model),
                                                    "size_bytes": os.path.getsize(target)}})
    run = RunDir.open(target)
    dist = run.step("distill")
    student, _ = _load_student(run)
    ds = _run_data(dist)
    x = ds.x_test[:PARITY_SAMPLES]
    models = {"student": _export_checked(student, ds.x_train, x, run / "student.onnx", exporter)}
    teacher = _teacher(dist["teacher"])
    try:  # the teacher is only needed for the benchmark: a teacher that will not export is a note, not a failure
        models["teacher"] = _export_checked(teacher, ds.x_train, x, run / "teacher.onnx", exporter)
    except EdgekdError as first:
        try:
            models["teacher"] = _export_checked(teacher, ds.x_train, x, run / "teacher.onnx", "torchscript")
        except EdgekdError:
            models["teacher"] = {"error": first.one_line()}
    run.record("export", {"exporter": exporter, "models": models})
    return ExportResult(str(run.path), models)


def _export_checked(model, sample: np.ndarray, x: np.ndarray, path: Path, exporter: str) -> dict:
    """Export to `path` only if ONNX Runtime matches PyTorch on `x` (else nothing is written)."""
    from .onnx_export import parity, to_onnx

    with atomic_path(path) as tmp:
        to_onnx(model, sample, tmp, exporter=exporter)
        check = parity(model, tmp, x)
        if not check["passed"]:
            raise EdgekdError(f"{path.name}: ONNX Runtime differs from PyTorch by up to "
                              f"{check['max_abs_diff']:.3g} (rtol {check['rtol']}, atol {check['atol']})",
                              "try --exporter torchscript, or report the model")
    return {"path": str(path), "exporter": exporter, "parity": check, "size_bytes": os.path.getsize(path),
            "sha256": sha256(path)}


# ---------------------------------------------------------------- quantize

def quantize(target: str | os.PathLike, *, mode: str = "static", preset: str | None = None,
             data: str | None = None, calib_samples: int = 256, max_drop: float = 0.01,
             output: str | None = None, seed: int = 0) -> QuantizeResult:
    """Quantize the exported student (or a plain .onnx) to int8, keeping it only if it passes the gate."""
    from .onnxutil import check_onnx_file
    from .int8 import gated_quantize, host_preset

    if calib_samples < 1:
        raise UsageError(f"--calib-samples must be >= 1, got {calib_samples}", "e.g. --calib-samples 256")
    if max_drop < 0:
        raise UsageError(f"--max-drop must be >= 0, got {max_drop}", "e.g. --max-drop 0.01 (one point)")
    run = None
    if str(target).endswith(".onnx"):
        src = Path(target)
        check_onnx_file(src)
        if data is None:
            raise UsageError(f"quantizing {src} needs --data SPEC (calibration and the accuracy gate use it)",
                             "pass --data digits or --data file.npz")
        dst = Path(output) if output else src.with_name(src.stem + ".int8.onnx")
        prof_preset = None
    else:
        run = RunDir.open(target)
        dist = run.step("distill")
        src = run.require("student.onnx")
        check_onnx_file(src)
        dst = Path(output) if output else run / "student.int8.onnx"
        prof_preset = (dist.get("profile") or {}).get("int8_preset")
    ds = data_mod.load(data) if data else _run_data(dist)
    rng = np.random.default_rng(seed)
    calib = ds.x_train[rng.permutation(len(ds.x_train))[:calib_samples]]
    chosen = preset or prof_preset or host_preset()
    details = gated_quantize(src, dst, mode, chosen, calib, ds.x_test, ds.y_test, max_drop)
    details["preset_source"] = "--preset" if preset else ("profile" if prof_preset else "host CPU")
    res = QuantizeResult(str(target), str(dst), os.path.getsize(dst), os.path.getsize(src), details)
    if run is not None:
        run.record("quantize", {**res.to_dict(), "calib_samples": int(len(calib)), "sha256": sha256(dst)})
    return res


# ---------------------------------------------------------------- bench

def bench(target: str | os.PathLike, *, data: str | None = None, threads: int = 1, batch: int = 1,
          runs: int = 300, warmup: int = 20, memory: bool = True, max_seconds: float = 3.0,
          profile: str | None = None, spin: bool = True) -> BenchResult:
    """Benchmark every model in RUN (teacher PyTorch/ONNX, student fp32/int8) side by side on ORT CPU.
    With a profile, each ONNX model also gets its predicted latency; when the profile was calibrated on
    this machine, the prediction's error against the measurement too. spin=False turns onnxruntime's
    idle-thread spinning off, as calibration times kernels (it matters from 2 threads on)."""
    from . import measure as B
    from .onnxutil import check_onnx_file, run_batches, session

    if threads < 1 or batch < 1 or runs < 1:
        raise UsageError(f"--threads, --batch and --runs must be >= 1 (got {threads}, {batch}, {runs})",
                         "e.g. --threads 1 --batch 1")
    run = None
    onnx_models: dict[str, Path] = {}
    teacher = None
    if str(target).endswith(".onnx"):
        check_onnx_file(target)
        onnx_models["model"] = Path(target)
        ds = data_mod.load(data) if data else None
    else:
        run = RunDir.open(target)
        dist = run.step("distill")
        onnx_models["student_fp32"] = run.require("student.onnx")
        for key, file in (("teacher_onnx", "teacher.onnx"), ("student_int8", "student.int8.onnx")):
            if (run / file).is_file():
                onnx_models[key] = run / file
        ds = data_mod.load(data) if data else _run_data(dist)
        teacher = _teacher(dist["teacher"])
    for p in onnx_models.values():
        check_onnx_file(p)

    if ds is not None:
        x_eval, y_eval = ds.x_test, ds.y_test
    else:
        shape = [batch if not isinstance(d, int) else d for d in session(target).get_inputs()[0].shape]
        x_eval, y_eval = np.random.default_rng(0).random((64, *shape[1:]), dtype=np.float32), None
    inputs = B.batches(x_eval, batch)
    common = {"threads": threads, "batch": batch}
    models: dict[str, dict] = {}
    teacher_pred = teacher_acc = None
    if teacher is not None:
        from .kd.trainer import predict_logits

        logits = predict_logits(teacher, x_eval)
        teacher_pred = logits.argmax(-1)
        teacher_acc = float((teacher_pred == y_eval).mean()) if y_eval is not None else None
        models["teacher_pytorch"] = {"runtime": "pytorch", **common,
                                     "latency_ms": B.torch_latency(teacher, inputs, threads, warmup, runs, max_seconds),
                                     "size_bytes": sum(p.numel() * p.element_size() for p in teacher.parameters()),
                                     **B.score(logits, y_eval, teacher_pred, teacher_acc)}
    student_fp32_pred = None
    for key, path in onnx_models.items():
        sess = session(path, threads, spin=spin)  # one session scores and times the model
        logits = run_batches(sess, x_eval)
        lat = B.onnx_latency(sess, inputs, warmup, runs, max_seconds)
        row = {"runtime": "onnxruntime", "path": str(path), "provider": lat.pop("provider"), **common,
               "latency_ms": lat, "size_bytes": os.path.getsize(path),
               **B.score(logits, y_eval, teacher_pred, teacher_acc)}
        if key == "student_fp32":
            student_fp32_pred = logits.argmax(-1)
        if key == "student_int8" and student_fp32_pred is not None:
            row["agreement_with_student_fp32"] = float((logits.argmax(-1) == student_fp32_pred).mean())
        if memory:
            row["memory"] = B.peak_memory(path, threads, batch)
        models[key] = row
    if "teacher_pytorch" in models:
        models["teacher_pytorch"]["provider"] = models["teacher_pytorch"]["latency_ms"].pop("provider")
    prediction = _predictions(profile, onnx_models, models, threads, batch) if profile else None
    report = {"schema_version": B.BENCH_SCHEMA_VERSION, "created": now(), "target": str(target),
              "host": B.host_info(), "settings": {**common, "runs": runs, "warmup": warmup, "spin": spin},
              "data": ds.summary() if ds else None, "models": models, "summary": _summary(models),
              "prediction": prediction}
    if run is not None:
        write_json(run / "bench.json", report)
        write_text(run / "report.md", render_markdown(report))
        run.record("bench", {"settings": report["settings"], "summary": report["summary"]})
    return BenchResult(str(target), report)


def _predictions(profile: str, paths: dict, models: dict, threads: int, batch: int) -> dict:
    """Predicted latency per ONNX model; the error vs measured only when the profile is this machine."""
    import platform

    from .latency.predictor import predict_latency

    prof = _profile(profile)
    host = (prof.data.get("calibration") or {}).get("host")
    here = host is not None and host == platform.node()
    for key, path in paths.items():
        pred = predict_latency(str(path), prof, threads=threads, batch=batch).latency_ms
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

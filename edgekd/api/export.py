"""`edgekd export`: the run's student and teacher to ONNX, parity-checked; or a plain .onnx loaded and run."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgekdError
from ..files import atomic_path, sha256, step_lock
from ..progress import say
from .options import ExportOptions
from .target import Result, as_inputs, bind_data, load_student, read_eval, resolve, run_teacher

PARITY_SAMPLES = 256


@dataclass
class ExportResult(Result):
    target: str
    models: dict[str, dict]
    verdict: str = ""
    next: str = ""
    mobile: dict = field(default_factory=dict)



def export(target: str | os.PathLike, *, trust_run: bool = False, **options) -> ExportResult:
    """RUN: export student (and teacher, for the benchmark) to ONNX and check parity with PyTorch.
    A plain .onnx path: check the file loads and runs once in onnxruntime, and report its inputs and
    outputs (options: see `ExportOptions`). `trust_run`: see `edgekd.api.trust`."""
    with step_lock(target, "export"):  # one writer per run directory
        return _export(target, trust_run=trust_run, **options)


def _export(target: str | os.PathLike, *, trust_run: bool = False, **options) -> ExportResult:
    from ..latency.graph import parse_shapes
    from .options import build

    o = build(ExportOptions, options)
    t = resolve(target)
    if not t.is_run:
        return _check_plain_onnx(t.path, parse_shapes(o.shape))
    run = t.run
    run.step("distill")  # a run that was distilled
    student, spec = load_student(run, trust_run)
    test, _, _, calib = read_eval(run)
    x, sample = as_inputs({k: v[:PARITY_SAMPLES] for k, v in test.items()}), as_inputs(calib)
    out_name = spec.get("output_name") or spec.get("output") or "logits"
    dist = run.step("distill")
    meta = _metadata(dist)
    export = {"exporter": o.exporter, "opset": o.opset, "output_name": out_name}
    models = {"student": _export_checked(student, sample, x, run / "student.onnx", export,
                                         {**meta, "edgekd.model": "student"})}
    try:  # the teacher is only needed for the benchmark: a teacher that will not load or export is a note
        teacher = run_teacher(run, trust_run)
        tmeta = {**meta, "edgekd.model": "teacher"}
        try:
            models["teacher"] = _export_checked(teacher, sample, x, run / "teacher.onnx", export, tmeta)
        except EdgekdError:
            models["teacher"] = _export_checked(teacher, sample, x, run / "teacher.onnx",
                                                {**export, "exporter": "torchscript"}, tmeta)
    except EdgekdError as e:
        models["teacher"] = {"error": e.one_line()}
    mobile = _mobile(run / "student.onnx", o.ort_format)
    if o.optimize:
        models["student"]["ort_optimized"] = _ort_optimized(student, run / "student.onnx", x, o.optimize, meta)
    shas = {f"{k}.onnx": m["sha256"] for k, m in models.items() if "sha256" in m}
    shas.update({m[k]["path"]: m[k]["sha256"] for m in models.values() for k in ("optimized", "ort_optimized")
                 if "sha256" in m.get(k, {})})
    app = _app_folder(run, student) if spec.get("family") == "hf" else None
    run.record("export", {"exporter": o.exporter, "opset": o.opset, "models": models, "mobile": mobile,
                          "metadata": meta, "sha256": shas, "app_folder": app})
    st = models["student"]
    teacher = models["teacher"]
    line = (f"student.onnx ({st['size_bytes'] / 1024:.1f} KB) matches PyTorch to {st['parity']['max_abs_diff']:.1e}; "
            + ("teacher.onnx too" if "parity" in teacher else "the teacher did not export, so bench will time "
               "only PyTorch's"))
    if mobile.get("ort"):
        line += f"; {mobile['ort']['ort']} written for ORT mobile"
    result = ExportResult(str(run.path), models, line, f"edgekd quantize {shlex.quote(str(run.path))}")
    result.mobile = mobile
    return result


def _metadata(dist: dict) -> dict[str, str]:
    """What an app needs to feed the model and trust it, in the ONNX file's metadata_props."""
    import json

    from .. import __version__

    figures, data = dist.get("figures") or {}, dist.get("data") or {}
    meta = {"edgekd.version": __version__, "edgekd.io": json.dumps(dist.get("io") or {}),
            "edgekd.classes": str(data.get("num_classes") or ""), "edgekd.data": Path(str(data.get("spec"))).name,
            "edgekd.teacher": str((dist.get("teacher") or {}).get("spec")),
            "edgekd.profile": str((dist.get("profile") or {}).get("name") or ""),
            "edgekd.student_test_accuracy": str(figures.get("student_accuracy")),
            "edgekd.retention": str(figures.get("retention"))}
    if data.get("kind") == "image":
        opts = dist.get("data_options") or {}
        meta["edgekd.preprocess"] = json.dumps({"layout": "NCHW", "scale": "1/255", "mean": opts.get("mean"),
                                                "std": opts.get("std"), "size": data.get("input_shape", [])[1:],
                                                "channels": opts.get("channels")})
    return meta


def _mobile(path: Path, ort_format: bool) -> dict:
    """How much of the graph NNAPI and CoreML would take (onnxruntime's checker), and the .ort model when asked."""
    from ..deploy.mobile import to_ort, usability

    out: dict = {}
    try:
        out["usability"] = usability(path)
    except Exception as e:  # the checker is advisory: a model it cannot read is a note, not a failed export
        out["usability_error"] = f"{type(e).__name__}: {str(e)[:160]}"
    if ort_format:
        try:
            out["ort"] = to_ort(path)
        except Exception as e:
            raise EdgekdError(f"converting {path.name} to the ORT format failed: {type(e).__name__}: {str(e)[:160]}",
                              "the plain student.onnx is written; report the model") from None
    return out


def _check_plain_onnx(path: Path, shapes: dict) -> ExportResult:
    from ..deploy.runtime import open_session, run_outputs
    from ..errors import UsageError
    from ..models.io import ModelIO
    from .target import feed_notes

    io = ModelIO.from_onnx(path)
    info = {"path": str(path), "opset": _opset(path), "io": io.to_dict(), "batch": io.batch or "dynamic",
            "input_shape": list(io.inputs[0].shape) if io.inputs else [],
            "batch_axes": {t.name: io.batch_axis(t) for t in io.inputs}, "recurrent": io.recurrent(),
            "ran_with": {}, "output_shapes": {}, "size_bytes": os.path.getsize(path), "sha256": sha256(path),
            "notes": []}
    io.check_shapes(shapes)  # a --shape that does not fit is a mistake; a dim nothing sizes is not
    try:  # the listing needs no run; running it needs every dim sized
        feeds = bind_data(io, None, shapes)
    except UsageError as e:
        info["notes"].append(f"listed, not run: {e.message} ({e.hint})")
        return ExportResult(str(path), {"model": info})
    sess = open_session(path)
    outs = run_outputs(sess, io, feeds.take(slice(0, 1)) if feeds.samples else feeds)
    io = io.observed(outs)
    info.update(io=io.to_dict(), ran_with=feeds.batch_shapes(1),
                output_shapes={k: list(v.shape) for k, v in outs.items()})
    if feeds.generated:
        info["notes"].append(f"ran once on generated inputs ({', '.join(feeds.generated)})")
    info["notes"] += [n.split(": ", 1)[1] for n in feed_notes(io, feeds, path) if "generated values" not in n]
    return ExportResult(str(path), {"model": info})


def _export_checked(model, sample, x, path: Path, export: dict, metadata: dict) -> dict:
    """Export to `path` (with `metadata` in its metadata_props) only if ONNX Runtime matches PyTorch on `x`
    (else nothing is written). Hugging Face models go through their own exporter, and onnxruntime's
    transformer optimizer writes NAME.optimized.onnx beside them."""
    from ..deploy.export import to_onnx
    from ..models import hf

    text = hf.is_text_model(model)
    say(f"exporting {path.name} (opset {export['opset']})")
    with atomic_path(path) as tmp:
        if text:
            how = hf.to_onnx(model, sample, tmp, export["opset"], export["output_name"])
        else:
            to_onnx(model, sample, tmp, exporter=export["exporter"], opset=export["opset"],
                    output_name=export["output_name"])
            how = {"exporter": export["exporter"]}
        say(f"checking {path.name} against PyTorch")
        check = _checked(model, tmp, x, path.name, metadata)
    out = {"path": path.name, **how, "opset": _opset(path), "parity": check, "size_bytes": os.path.getsize(path),
           "sha256": sha256(path)}
    if text:
        say(f"optimizing {path.name} with onnxruntime's transformer fusions")
        out["optimized"] = _optimized(model, path, x, metadata)
    return out


def _checked(model, onnx_path: Path, x, name: str, metadata: dict) -> dict:
    """Metadata in, then parity with PyTorch on `x` (an EdgekdError when it fails)."""
    from ..deploy.export import parity
    from ..deploy.mobile import add_metadata

    add_metadata(onnx_path, metadata)
    check = parity(model, onnx_path, x)
    if not check["passed"]:
        raise EdgekdError(f"{name}: ONNX Runtime differs from PyTorch by up to "
                          f"{check['max_abs_diff']:.3g} (rtol {check['rtol']}, atol {check['atol']})",
                          "try --exporter torchscript, or report the model")
    return check


def _optimized(model, path: Path, x, metadata: dict) -> dict:
    """NAME.optimized.onnx: onnxruntime's transformer fusions, kept only when it still matches PyTorch
    (a model the optimizer cannot fuse is a note: the plain export stands)."""
    from ..models import hf
    from ..models.inference import unwrap

    dst = path.with_name(path.stem + ".optimized.onnx")
    try:
        with atomic_path(dst) as tmp:
            fused = hf.optimize(path, tmp, unwrap(model).config.to_dict())
            check = _checked(model, tmp, x, dst.name, metadata)
    except Exception as e:  # advisory: the unfused model is correct and written
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"}
    return {"path": dst.name, "fused": fused, "parity": check, "size_bytes": os.path.getsize(dst),
            "sha256": sha256(dst)}


def _ort_optimized(model, path: Path, x, level: str, metadata: dict) -> dict:
    """NAME.ort-LEVEL.onnx: the graph onnxruntime optimizes at `level`, saved offline (a session then loads
    it without optimizing again), parity-checked like the plain export."""
    from ..deploy.runtime import open_session

    dst = path.with_name(f"{path.stem}.ort-{level}.onnx")
    with atomic_path(dst) as tmp:
        open_session(path, optimized_path=str(tmp), level=level)
        check = _checked(model, tmp, x, dst.name, metadata)
    note = "layout changes for this machine's CPU: load it on the same kind of CPU" if level == "all" else ""
    return {"path": dst.name, "level": level, "parity": check, "size_bytes": os.path.getsize(dst),
            "sha256": sha256(dst), "note": note}


def _app_folder(run, student) -> dict:
    """RUN/student/: model.onnx with the config and tokenizer files an app loads it with (transformers,
    optimum.onnxruntime), written whole or not at all."""
    import shutil
    import tempfile

    from ..models import hf
    from ..models.inference import unwrap

    tm = unwrap(student)
    tm.tokenizer = hf.load_tokenizer(run.step("distill")["teacher"]["spec"])
    final = run / "student"
    tmp = Path(tempfile.mkdtemp(prefix=".student.", dir=run.path))
    try:
        hf.save_app_folder(tm, tmp)
        shutil.copyfile(run / "student.onnx", tmp / "model.onnx")
        best = run / "student.optimized.onnx"
        if best.is_file():
            shutil.copyfile(best, tmp / "model.optimized.onnx")
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"path": "student", "files": sorted(p.name for p in final.iterdir())}


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)

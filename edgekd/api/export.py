"""`edgekd export`: the run's student and teacher to ONNX, parity-checked; or a plain .onnx loaded and run."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgekdError
from .options import ExportOptions
from .rundir import atomic_path, sha256
from .target import Result, as_inputs, bind_data, load_student, read_eval, resolve, run_teacher

PARITY_SAMPLES = 256


@dataclass
class ExportResult(Result):
    target: str
    models: dict[str, dict]
    verdict: str = ""
    next: str = ""


def export(target: str | os.PathLike, **options) -> ExportResult:
    """RUN: export student (and teacher, for the benchmark) to ONNX and check parity with PyTorch.
    A plain .onnx path: check the file loads and runs once in onnxruntime, and report its inputs and
    outputs (options: see `ExportOptions`)."""
    from ..latency.graph import parse_shapes
    from .options import build

    o = build(ExportOptions, options)
    t = resolve(target)
    if not t.is_run:
        return _check_plain_onnx(t.path, parse_shapes(o.shape))
    run = t.run
    run.step("distill")  # a run that was distilled
    student, spec = load_student(run)
    test, _, _, calib = read_eval(run)
    x, sample = as_inputs({k: v[:PARITY_SAMPLES] for k, v in test.items()}), as_inputs(calib)
    out_name = spec.get("output") or "logits"
    models = {"student": _export_checked(student, sample, x, run / "student.onnx", o.exporter, out_name)}
    try:  # the teacher is only needed for the benchmark: a teacher that will not load or export is a note
        teacher = run_teacher(run)
        try:
            models["teacher"] = _export_checked(teacher, sample, x, run / "teacher.onnx", o.exporter, out_name)
        except EdgekdError:
            models["teacher"] = _export_checked(teacher, sample, x, run / "teacher.onnx", "torchscript", out_name)
    except EdgekdError as e:
        models["teacher"] = {"error": e.one_line()}
    shas = {f"{k}.onnx": m["sha256"] for k, m in models.items() if "sha256" in m}
    run.record("export", {"exporter": o.exporter, "models": models, "sha256": shas})
    st = models["student"]
    teacher = models["teacher"]
    line = (f"student.onnx ({st['size_bytes'] / 1024:.1f} KB) matches PyTorch to {st['parity']['max_abs_diff']:.1e}; "
            + ("teacher.onnx too" if "parity" in teacher else "the teacher did not export, so bench will time "
               "only PyTorch's"))
    return ExportResult(str(run.path), models, line, f"edgekd quantize {shlex.quote(str(run.path))}")


def _check_plain_onnx(path: Path, shapes: dict) -> ExportResult:
    from ..deploy.runtime import open_session, run_outputs
    from ..models.io import ModelIO

    io = ModelIO.from_onnx(path)
    feeds = bind_data(io, None, shapes)
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
    from ..deploy.export import parity, to_onnx

    with atomic_path(path) as tmp:
        to_onnx(model, sample, tmp, exporter=exporter, output_name=output_name)
        check = parity(model, tmp, x)
        if not check["passed"]:
            raise EdgekdError(f"{path.name}: ONNX Runtime differs from PyTorch by up to "
                              f"{check['max_abs_diff']:.3g} (rtol {check['rtol']}, atol {check['atol']})",
                              "try --exporter torchscript, or report the model")
    return {"path": path.name, "exporter": exporter, "parity": check, "size_bytes": os.path.getsize(path),
            "sha256": sha256(path)}

"""`edgekd quantize`: fp32 ONNX to int8 with onnxruntime, kept only when it passes the gate."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .options import QuantizeOptions
from .rundir import sha256
from .target import Result, bind_data, generated_note, model_data, resolve


@dataclass
class QuantizeResult(Result):
    target: str
    output: str
    size_bytes: int
    fp32_size_bytes: int
    details: dict


def quantize(target: str | os.PathLike, *, seed: int = 0, **options) -> QuantizeResult:
    """Quantize the exported student (or a plain .onnx) to int8, keeping it only if it passes the gate
    (options: see `QuantizeOptions`)."""
    from ..deploy.quantize import calibration_feeds, gated_quantize, host_preset
    from ..latency.graph import parse_shapes
    from ..models.io import ModelIO
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
    md = model_data(t, o.data)
    io = ModelIO.from_onnx(src)
    eval_feeds = bind_data(io, md, shapes)
    calib_feeds = bind_data(io, md, shapes, "calib")
    rng = np.random.default_rng(seed)
    calib_feeds = calib_feeds.take(rng.permutation(len(calib_feeds))[:o.calib_samples])
    chosen = o.preset or prof_preset or host_preset()
    details = gated_quantize(src, dst, o.mode, chosen, io, calibration_feeds(io, calib_feeds), eval_feeds,
                             md.labels, o.max_drop)
    details["preset_source"] = "--preset" if o.preset else ("profile" if prof_preset else "host CPU")
    details["notes"] = generated_note(eval_feeds, src) + (
        [f"{src.name}: its batch is fixed at {io.batch}; samples were fed {io.batch} at a time"] if io.batch else [])
    res = QuantizeResult(str(target), str(dst), os.path.getsize(dst), os.path.getsize(src), details)
    drop = (f"{details['accuracy_drop'] * 100:.2f} accuracy points" if details["metric"] == "accuracy" else
            f"{details['agreement_with_fp32']:.2%} {details['agreement_metric']} with fp32")
    details["verdict"] = (f"int8 ({details['chosen']}): {res.size_bytes / res.fp32_size_bytes:.0%} of fp32's size, "
                          f"{drop} (gate {details['max_drop']:g}); `edgekd bench` measures whether it is faster")
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

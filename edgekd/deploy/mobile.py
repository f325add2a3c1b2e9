"""What a phone app needs from an exported model: metadata to feed it right, the ORT format, and how much of
the graph the mobile execution providers (NNAPI, CoreML) would take — with onnxruntime's own tools.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path

import onnx

from ..files import atomic_path


def add_metadata(path: Path, props: dict[str, str]) -> None:
    """Write `props` into the model's metadata_props (ONNX's key/value slot that runtimes expose to apps:
    onnxruntime's `session.get_modelmeta().custom_metadata_map`)."""
    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        if key in existing:
            existing[key].value = str(value)
        else:
            model.metadata_props.add(key=key, value=str(value))
    onnx.save(model, str(path))


def to_ort(path: Path) -> dict:
    """MODEL.ort beside MODEL.onnx (fixed optimizations, what a mobile build loads) and the required-operators
    config for a reduced onnxruntime build (MODEL.required_operators.config)."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    for name in ("convert_onnx_models_to_ort", "ort_format_model.utils", "ort_format_model"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".ort-") as td:
        src = Path(td) / path.name
        src.write_bytes(path.read_bytes())
        with contextlib.redirect_stdout(io.StringIO()):  # the converter prints; --json owns stdout
            convert_onnx_models_to_ort(src, output_dir=Path(td) / "out",
                                       optimization_styles=[OptimizationStyle.Fixed])
        out = Path(td) / "out"
        ort = next(out.glob("*.ort"))
        config = next(out.glob("*.config"), None)
        dst = path.with_suffix(".ort")
        os.replace(ort, dst)
        cfg_dst = path.with_suffix(".required_operators.config")
        if config is not None:
            with atomic_path(cfg_dst) as tmp:
                tmp.write_bytes(config.read_bytes())
    return {"ort": dst.name, "size_bytes": dst.stat().st_size,
            "required_operators": cfg_dst.name if config is not None else None}


def usability(path: Path) -> dict:
    """Per mobile EP: how many nodes it would take, in how many partitions, and onnxruntime's verdict (YES,
    MAYBE, NO: worth trying with that EP as is), also with the dynamic dims fixed (NNAPI and CoreML need
    fixed shapes; onnxruntime.tools.make_dynamic_shape_fixed fixes them)."""
    from onnxruntime.tools.mobile_helpers import usability_checker as uc

    logging.getLogger("usability_checker").setLevel(logging.ERROR)
    model = uc.ModelProtoWithShapeInfo(path).model_with_shape_info
    checks = {"nnapi": uc.check_nnapi_partitions,
              "coreml_neuralnetwork": lambda m, fixed: uc.check_coreml_partitions(
                  m, fixed, "coreml_supported_neuralnetwork_ops.md"),
              "coreml_mlprogram": lambda m, fixed: uc.check_coreml_partitions(
                  m, fixed, "coreml_supported_mlprogram_ops.md")}
    out = {}
    for ep, check in checks.items():
        info, fixed = check(model, True), check(model, False)
        out[ep] = {"suitability": info.suitability().name, "nodes": info.num_nodes,
                   "supported_nodes": info.num_supported_nodes, "partitions": info.num_partitions,
                   "unsupported_ops": sorted(info.unsupported_ops),
                   "suitability_with_fixed_shapes": fixed.suitability().name,
                   "supported_nodes_with_fixed_shapes": fixed.num_supported_nodes}
    return out

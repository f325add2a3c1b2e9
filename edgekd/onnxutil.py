"""Small onnx/onnxruntime helpers shared by export, quantize, bench and the latency predictor."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import UsageError


def check_onnx_file(path: str | os.PathLike):
    """Load and check an .onnx file; a missing, non-ONNX or truncated file is a one-line usage error."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} does not exist", "pass a run directory or an existing .onnx file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UsageError(f"{path} is not a valid ONNX model ({reason})",
                         "re-export it (e.g. `edgekd export RUN`); the file may be truncated") from None
    if not model.graph.node:
        raise UsageError(f"{path} is not a valid ONNX model (its graph has no nodes)", "re-export it")
    return model


def session(path: str | os.PathLike, threads: int = 1, providers: list[str] | None = None,
            optimized_path: str | None = None, level: str = "all", spin: bool = True):
    """An onnxruntime session with explicit threads (ORT ignores taskset/cgroups otherwise).

    spin=False stops idle worker threads from busy-waiting: needed when many sessions are timed in turn,
    where one session's spinning workers would steal the cores the next session's run needs."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    so.log_severity_level = 3
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path:
        so.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])


def run_batches(sess, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """First output of `sess` over `x`, in batches."""
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs)


def input_shape(model) -> list:
    """The first graph input's shape, with symbolic dims as strings."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param if d.dim_param else (d.dim_value or None) for d in dims]

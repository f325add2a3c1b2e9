"""Small onnx/onnxruntime helpers shared by export, quantize, bench and the latency predictor."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import EdgekdError, UsageError


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


def log_severity() -> int:
    """onnxruntime's log level for edgekd's sessions: fatal only (4), or warnings (2) under EDGEKD_DEBUG=1."""
    return 2 if os.environ.get("EDGEKD_DEBUG", "") not in ("", "0") else 4


def quiet_onnxruntime() -> None:
    """onnxruntime's own log lines (an EP it could not create, a fallback, a failed load, a kernel that failed
    at run time) would land on stderr above edgekd's one line, which says what happened; EDGEKD_DEBUG=1 shows
    them. The default logger covers the sessions onnxruntime's own tools open (quantization's calibrators)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(log_severity())


def external_data(path: str | os.PathLike) -> list[str]:
    """The external-data files (relative to the model's folder) an ONNX model's tensors name and that exist
    there, each once: what must travel with the .onnx file."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    names = {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    return sorted(n for n in names if (path.parent / n).is_file())


def model_size(path: str | os.PathLike) -> int:
    """Bytes on disk of an ONNX model: the .onnx file and its external data (what a device must hold)."""
    path = Path(path)
    return os.path.getsize(path) + sum(os.path.getsize(path.parent / f) for f in external_data(path))


def session(path: str | os.PathLike, threads: int = 1, providers: list[str] | None = None,
            optimized_path: str | None = None, level: str = "all", spin: bool = True,
            profile_prefix: str | None = None):
    """An onnxruntime session with explicit threads (ORT ignores taskset/cgroups otherwise).

    spin=False stops idle worker threads from busy-waiting: needed when many sessions are timed in turn,
    where one session's spinning workers would steal the cores the next session's run needs."""
    import onnxruntime as ort

    quiet_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    so.log_severity_level = log_severity()
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path:
        so.optimized_model_filepath = str(optimized_path)
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])


def open_session(path: str | os.PathLike, threads: int = 1, **kw):
    """`session` with onnxruntime's failures (an op it lacks, a custom domain, a bad initializer) as one
    line naming the file."""
    try:
        return session(path, threads, **kw)
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise EdgekdError(f"onnxruntime cannot load {path}: {reason}",
                          "check the model runs in onnxruntime (a custom op needs its library registered)") from None


def run_outputs(sess, io, feeds, names: list[str] | None = None, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Outputs `names` (default: all) of `sess` over every sample of `feeds`, batch by batch (one fixed batch
    at a time for a fixed-batch model). Outputs with a sample axis are concatenated; others (a final state)
    are the last batch's."""
    from ..models.io import batches

    names = names or io.output_names
    axis = {t.name: io.batch_axis(t) for t in io.outputs}  # where each output's samples are (None: not per sample)
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feed, real in batches(io, feeds, batch_size):
        try:
            outs = sess.run(names, feed)
        except Exception as e:
            shapes = ", ".join(f"{k} {v.dtype} {tuple(v.shape)}" for k, v in feed.items())
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise EdgekdError(f"onnxruntime could not run the model on inputs {shapes}: {reason}",
                              "check --data / --shape fit the model's inputs (edgekd export MODEL.onnx lists "
                              "them)") from None
        for n, o in zip(names, outs):
            ax = axis.get(n)
            if ax is not None and o.ndim > ax and o.shape[ax] >= real:
                o = np.moveaxis(np.moveaxis(o, ax, 0)[:real], 0, ax)
            parts[n].append(o)
    return {n: (np.concatenate(v, axis=axis[n]) if axis.get(n) is not None and v[0].ndim > axis[n] else v[-1])
            for n, v in parts.items()}

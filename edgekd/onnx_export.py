"""torch -> ONNX with a dynamic batch axis, then a parity check against PyTorch on real inputs."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from .errors import EdgekdError

OPSET = 18
PARITY_RTOL, PARITY_ATOL = 1e-3, 1e-4


@contextlib.contextmanager
def _quiet():
    """torch.onnx prints progress lines on stdout; keep stdout clean for --json."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def to_onnx(model, sample: np.ndarray, path: str | os.PathLike, exporter: str = "dynamo",
            opset: int = OPSET) -> Path:
    """Export `model` (eval mode) to `path`; input `input`, output `logits`, batch axis dynamic.
    Callers wrap `path` in `atomic_path` so a failed export or parity check leaves nothing behind."""
    import torch

    model = model.eval()
    x = torch.from_numpy(np.ascontiguousarray(sample[:2] if len(sample) >= 2 else np.repeat(sample, 2, 0)))
    path = Path(path)
    with _quiet():
        tmp_onnx = path.with_name(path.name + ".export.onnx")
        try:
            if exporter == "dynamo":
                torch.onnx.export(model, (x,), str(tmp_onnx), dynamo=True, opset_version=opset,
                                  input_names=["input"], output_names=["logits"],
                                  dynamic_shapes=({0: "batch"},), external_data=False, verbose=False)
            else:
                torch.onnx.export(model, (x,), str(tmp_onnx), dynamo=False, opset_version=min(opset, 17),
                                  input_names=["input"], output_names=["logits"],
                                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        except Exception as e:
            raise EdgekdError(f"torch.onnx.export ({exporter}) failed: {type(e).__name__}: "
                              f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}",
                              "try --exporter torchscript, or simplify data-dependent control flow") from None
        finally:
            if tmp_onnx.exists():
                os.replace(tmp_onnx, path)
    return path


def parity(model, onnx_path: str | os.PathLike, x: np.ndarray) -> dict:
    """Compare ONNX Runtime with PyTorch on `x`: max abs/rel diff and top-1 agreement."""
    from .kd.trainer import predict_logits
    from .onnxutil import run_batches, session

    ref = predict_logits(model, x)
    got = run_batches(session(onnx_path), x)
    abs_diff = np.abs(ref - got)
    rel = abs_diff / np.maximum(np.abs(ref), 1e-6)
    ok = bool(np.allclose(got, ref, rtol=PARITY_RTOL, atol=PARITY_ATOL))
    return {"samples": int(len(x)), "max_abs_diff": float(abs_diff.max()), "max_rel_diff": float(rel.max()),
            "top1_agreement": float((ref.argmax(-1) == got.argmax(-1)).mean()),
            "rtol": PARITY_RTOL, "atol": PARITY_ATOL, "passed": ok}

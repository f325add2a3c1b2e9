"""torch -> ONNX with a dynamic batch axis, then a parity check against PyTorch on real inputs."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import EdgekdError

OPSET = 18
PARITY_RTOL, PARITY_ATOL = 1e-3, 1e-4


@contextlib.contextmanager
def quiet():
    """torch.onnx prints progress lines on stdout; keep stdout clean for --json."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    disabled = logging.root.manager.disable
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    logging.disable(logging.WARNING)  # optimum's and onnxruntime's optimizer's loggers have many names
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def to_onnx(model, sample, path: str | os.PathLike, exporter: str = "dynamo", opset: int = OPSET,
            output_name: str = "logits") -> Path:
    """Export `model` (eval mode) to `path` with a dynamic batch axis on every input and the output.
    `sample` is one array (input `input`) or {input name: array} (those names, in that order; the model
    takes them positionally, see models.inference.Adapted). Callers wrap `path` in `atomic_path` so a failed
    export or parity check leaves nothing behind."""
    import torch

    from ..data import n_samples, take

    model = model.eval()
    named = sample if isinstance(sample, dict) else {"input": sample}
    two = take(named, slice(0, 2)) if n_samples(named) >= 2 else {k: np.repeat(v, 2, 0) for k, v in named.items()}
    args = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in two.values())
    names = list(two)
    path = Path(path)
    with quiet():
        tmp_onnx = path.with_name(path.name + ".export.onnx")
        try:
            if exporter == "dynamo":
                batch = torch.export.Dim("batch")
                dims = tuple({0: batch} for _ in args)
                torch.onnx.export(model, args, str(tmp_onnx), dynamo=True, opset_version=opset,
                                  input_names=names, output_names=[output_name],
                                  dynamic_shapes=(dims,) if _varargs(model) else dims, external_data=False,
                                  verbose=False)
            else:
                axes = {n: {0: "batch"} for n in [*names, output_name]}
                torch.onnx.export(model, args, str(tmp_onnx), dynamo=False, opset_version=min(opset, 17),
                                  input_names=names, output_names=[output_name], dynamic_axes=axes)
        except Exception as e:
            raise EdgekdError(f"torch.onnx.export ({exporter}) failed: {type(e).__name__}: {_reason(e)}",
                              "try --exporter torchscript, or simplify data-dependent control flow") from None
        finally:
            if tmp_onnx.exists():
                os.replace(tmp_onnx, path)
    return path


def _varargs(model) -> bool:
    """forward(*args) (models.inference.Adapted): torch.export sees one argument holding them all."""
    import inspect

    params = list(inspect.signature(model.forward).parameters.values())
    return len(params) == 1 and params[0].kind is inspect.Parameter.VAR_POSITIONAL


def _reason(e: Exception) -> str:
    """The line of torch.export's long report that says what went wrong."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    summary = next((lines[i + 1] for i, ln in enumerate(lines[:-1]) if "Exception summary" in ln), None)
    return (summary or (lines[0] if lines else type(e).__name__))[:240]


def parity(model, onnx_path: str | os.PathLike, x) -> dict:
    """Compare ONNX Runtime with PyTorch on `x`: max abs/rel diff and agreement (top-1 for logits)."""
    from ..data import arrays
    from ..models.inference import predict
    from ..models.io import ModelIO, bind
    from .measure import fidelity
    from .runtime import open_session, run_outputs

    ref = predict(model, x)
    io = ModelIO.from_onnx(onnx_path)
    feeds = bind(io, arrays(x), source=str(onnx_path))
    got = run_outputs(open_session(onnx_path), io, feeds)[io.output_names[0]]
    abs_diff = np.abs(ref - got)
    rel = abs_diff / np.maximum(np.abs(ref), 1e-6)
    ok = bool(np.allclose(got, ref, rtol=PARITY_RTOL, atol=PARITY_ATOL))
    agree = fidelity(ref, got, io.outputs[0].kind)
    return {"samples": int(len(ref)), "max_abs_diff": float(abs_diff.max()), "max_rel_diff": float(rel.max()),
            "agreement_metric": agree[0] if agree else None, "agreement": agree[1] if agree else None,
            "rtol": PARITY_RTOL, "atol": PARITY_ATOL, "passed": ok}


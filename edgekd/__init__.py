"""edgekd: distil a teacher into a small, fast int8 ONNX student that fits an edge device, with proof.

The Python API mirrors the CLI; heavy imports (torch, onnxruntime) happen on first use:

    import edgekd
    edgekd.distill("teacher.py:build", "digits", "runs/x", profile="raspberry-pi")
    edgekd.export("runs/x"); edgekd.quantize("runs/x"); report = edgekd.bench("runs/x").report
"""
from __future__ import annotations

from importlib import import_module

from .errors import EdgekdError, UsageError

__version__ = "0.1.0"

# public name -> (module, attribute), imported lazily so `edgekd --help` stays instant
_API = {
    "distill": ("api.distill", "distill"), "export": ("api.export", "export"),
    "quantize": ("api.quantize", "quantize"), "bench": ("api.bench", "bench"),
    "size": ("api.size", "size"), "pipeline": ("api.pipeline", "run_pipeline"), "demo": ("api.pipeline", "run_demo"),
    "load_profile": ("profiles", "load"),
    "predict_latency": ("latency.predictor", "predict_latency"),
    "calibrate": ("latency.calibrate", "calibrate"),
    "ModelIO": ("models.io", "ModelIO"),
    "SlowerError": ("deploy.quantize", "SlowerError"),
}
__all__ = [*_API, "EdgekdError", "UsageError", "__version__"]


def __getattr__(name: str):
    if name in _API:
        module, attr = _API[name]
        return getattr(import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'edgekd' has no attribute {name!r}")

"""onnxruntime execution providers (EPs) by their short names, what brings each one, and where a session
really put the graph's nodes: onnxruntime falls back to the CPU silently, so edgekd asks it (a profiled run)."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..registry import Registry


@dataclass(frozen=True)
class EP:
    name: str        # what users type: --ep openvino
    provider: str    # what onnxruntime calls it
    package: str     # what brings it
    device: str | None = None  # an EP with memory of its own: bench binds inputs there once (IO binding)


EPS: Registry[EP] = Registry("execution provider", "edgekd providers lists them, with what brings each one")


def register(ep: EP) -> EP:
    """Add an execution provider under a short name (users may add their own)."""
    return EPS.register(ep)


for _ep in [
    EP("cpu", "CPUExecutionProvider", "onnxruntime (every build)"),
    EP("openvino", "OpenVINOExecutionProvider", "pip install onnxruntime-openvino (x86 CPUs, Intel GPUs and NPUs; it "
                                                "replaces the onnxruntime package)"),
    EP("cuda", "CUDAExecutionProvider", "pip install onnxruntime-gpu (NVIDIA GPUs, CUDA 12)", "cuda"),
    EP("tensorrt", "TensorrtExecutionProvider", "pip install onnxruntime-gpu, plus the TensorRT libraries", "cuda"),
    EP("dml", "DmlExecutionProvider", "pip install onnxruntime-directml (Windows, DirectX 12 GPUs)"),
    EP("qnn", "QNNExecutionProvider", "pip install onnxruntime-qnn (Qualcomm NPUs, Windows on Arm / Android)"),
    EP("xnnpack", "XnnpackExecutionProvider", "the mobile packages (onnxruntime-android, onnxruntime-objc) or a "
                                              "build with --use_xnnpack"),
    EP("nnapi", "NnapiExecutionProvider", "onnxruntime-android (Android NNAPI)"),
    EP("coreml", "CoreMLExecutionProvider", "onnxruntime on macOS, or onnxruntime-objc on iOS"),
    EP("rocm", "ROCMExecutionProvider", "an onnxruntime build for AMD ROCm"),
]:
    register(_ep)


def available() -> list[str]:
    """Short names of the EPs this onnxruntime has."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [e.name for e in EPS.values() if e.provider in have]


def listing() -> list[dict]:
    """Every known EP: its provider name, whether this onnxruntime has it, and what brings it."""
    import onnxruntime as ort

    have = available()
    return [{"name": e.name, "provider": e.provider, "available": e.name in have, "package": e.package,
             "onnxruntime": ort.__version__} for e in EPS.values()]


def parse(spec: str) -> list[str]:
    """`cpu,openvino` -> ["cpu", "openvino"]; an unknown name is an error listing the known ones."""
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    if not names:
        raise UsageError("--ep is empty", "e.g. --ep cpu,openvino")
    for n in names:
        EPS.lookup(n, f"in --ep {spec!r}")
    return list(dict.fromkeys(names))


def options(specs: list[str]) -> dict[str, dict[str, str]]:
    """`openvino:device_type=CPU` (repeatable) -> {"openvino": {"device_type": "CPU"}}."""
    out: dict[str, dict[str, str]] = {}
    for spec in specs:
        ep, sep, kv = spec.partition(":")
        key, eq, value = kv.partition("=")
        if not sep or not eq or not key or ep not in EPS:
            raise UsageError(f"--ep-option {spec!r} is not EP:KEY=VALUE with a known EP",
                             "e.g. --ep-option openvino:device_type=CPU")
        out.setdefault(ep, {})[key] = value
    return out


def placement(path: str | os.PathLike, ep: str, opts: dict[str, str], feed: dict[str, np.ndarray],
              threads: int = 1) -> dict[str, int]:
    """{provider: nodes it ran} over one profiled run: how much of the graph the EP really took."""
    from .runtime import session

    with tempfile.TemporaryDirectory() as td:
        sess = session(path, threads, providers=providers_for(ep, opts), profile_prefix=str(Path(td) / "p"))
        sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    counts: dict[str, int] = {}
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            prov = (e.get("args") or {}).get("provider", "?")
            counts[prov] = counts.get(prov, 0) + 1
    return counts


def providers_for(ep: str, opts: dict[str, str] | None = None) -> list:
    """onnxruntime's providers argument for `ep`, the CPU behind it for what it does not take."""
    main = (EPS[ep].provider, opts) if opts else EPS[ep].provider
    return [main] if ep == "cpu" else [main, "CPUExecutionProvider"]

"""Measure latency (p50/p90/p99 at batch B), model size, peak memory, accuracy, retention and agreement.

Machines are noisy, so every model is timed side by side in one run with the same inputs, threads and
warm-up. Latency is measured in this process; peak memory in a fresh process per model.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH_SCHEMA_VERSION = 1


def percentiles(samples_ms: list[float]) -> dict:
    a = np.asarray(samples_ms)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "runs": int(len(a))}


def _timed(fn, inputs: list, warmup: int, runs: int, max_seconds: float) -> dict:
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    samples, deadline = [], time.perf_counter() + max_seconds
    for i in range(runs):
        x = inputs[i % len(inputs)]
        t0 = time.perf_counter_ns()
        fn(x)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
        if time.perf_counter() > deadline and len(samples) >= 20:
            break
    return percentiles(samples)


def batches(x: np.ndarray, batch: int, count: int = 64) -> list[np.ndarray]:
    """Up to `count` real input batches of size `batch` (cycled from x)."""
    n = max(1, min(count, len(x) // batch or 1))
    return [np.ascontiguousarray(np.resize(x[i * batch:(i + 1) * batch], (batch, *x.shape[1:])))
            for i in range(n)]


def onnx_latency(sess, inputs: list[np.ndarray], warmup: int = 20, runs: int = 300,
                 max_seconds: float = 3.0) -> dict:
    """Latency of an onnxruntime session (made with the threads to measure) over real input batches."""
    name = sess.get_inputs()[0].name
    out = _timed(lambda x: sess.run(None, {name: x}), inputs, warmup, runs, max_seconds)
    out["provider"] = sess.get_providers()[0]
    return out


def torch_latency(model, inputs: list[np.ndarray], threads: int = 1, warmup: int = 20, runs: int = 300,
                  max_seconds: float = 3.0) -> dict:
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tensors = [torch.from_numpy(x) for x in inputs]
        with torch.inference_mode():
            out = _timed(model, tensors, warmup, runs, max_seconds)
    finally:
        torch.set_num_threads(prev)
    out["provider"] = "pytorch-cpu"
    return out


def peak_memory(path: str | os.PathLike, threads: int, batch: int) -> dict:
    """Run the memory probe in a fresh interpreter; on failure report why instead of crashing the bench."""
    try:
        res = subprocess.run([sys.executable, "-m", "edgekd.memprobe", str(path), str(threads), str(batch)],
                             capture_output=True, text=True, timeout=120, check=True)
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as e:
        return {"error": f"{type(e).__name__}"}


def host_info() -> dict:
    import onnxruntime as ort

    info = {"machine": platform.machine(), "python": platform.python_version(), "onnxruntime": ort.__version__,
            "cpu_count": os.cpu_count()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                      if ln.startswith(("flags", "Features"))), [])
        info["cpu"] = model
        info["int8_flags"] = sorted(set(flags) & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8",
                                                  "asimddp", "i8mm", "asimdhp"})
    except OSError:
        pass
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def score(logits: np.ndarray, y: np.ndarray | None, teacher_pred: np.ndarray | None,
          teacher_acc: float | None) -> dict:
    """Accuracy, retention (accuracy / teacher's) and top-1 agreement with the teacher."""
    pred = logits.argmax(-1)
    out: dict = {"accuracy": None, "retention": None, "agreement": None}
    if y is not None:
        out["accuracy"] = float((pred == y).mean())
        if teacher_acc:
            out["retention"] = out["accuracy"] / teacher_acc
    if teacher_pred is not None:
        out["agreement"] = float((pred == teacher_pred).mean())
    return out

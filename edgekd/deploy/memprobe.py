"""Peak memory of one ONNX model, measured in a fresh process (ORT's arena never shrinks).

Run as `python -m edgekd.deploy.memprobe MODEL.onnx THREADS FEED.npz [PROVIDERS.json]` (the arrays the timed runs
feed, by input name; onnxruntime's providers argument); prints one JSON object. The baseline is this interpreter
with numpy and onnxruntime imported and the feed loaded, so `delta_mb` is what the model itself costs. Needs only
onnxruntime and numpy, so it also runs on a device without torch.
"""
from __future__ import annotations

import json
import resource
import sys


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) from /proc; unlike ru_maxrss, VmHWM does not inherit the parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def probe(path: str, threads: int, feed_path: str, providers: list | None = None, runs: int = 20) -> dict:
    import numpy as np
    import onnxruntime  # noqa: F401  (part of the baseline: every deployment imports it)

    from edgekd.deploy.runtime import session

    with np.load(feed_path, allow_pickle=False) as f:
        feed = {k: f[k] for k in f.files}
    before = _status_mb("VmRSS")
    sess = session(path, threads, providers=providers)
    after_load = _status_mb("VmRSS")
    for _ in range(runs):
        sess.run(None, feed)
    peak = _status_mb("VmHWM")
    return {"rss_before_mb": round(before, 2), "rss_after_session_mb": round(after_load, 2),
            "peak_rss_mb": round(peak, 2), "session_mb": round(after_load - before, 2),
            "delta_mb": round(peak - before, 2), "provider": sess.get_providers()[0],
            "arena": "enabled (onnxruntime default)"}


if __name__ == "__main__":
    with_providers = json.loads(open(sys.argv[4]).read()) if len(sys.argv) > 4 else None
    with_providers = [tuple(p) if isinstance(p, list) else p for p in with_providers or []] or None  # (EP, options)
    print(json.dumps(probe(sys.argv[1], int(sys.argv[2]), sys.argv[3], with_providers)))

"""Peak memory of one ONNX model, measured in a fresh process (ORT's arena never shrinks).

Run as `python -m edgekd.deploy.memprobe MODEL.onnx THREADS FEED.npz` (the arrays the timed runs feed, by input
name); prints one JSON object. Needs only onnxruntime and numpy, so it also runs on a device without torch.
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


def probe(path: str, threads: int, feed_path: str, runs: int = 20) -> dict:
    import numpy as np

    from edgekd.deploy.runtime import session

    with np.load(feed_path, allow_pickle=False) as f:
        feed = {k: f[k] for k in f.files}
    before = _status_mb("VmRSS")
    sess = session(path, threads)
    after_load = _status_mb("VmRSS")
    for _ in range(runs):
        sess.run(None, feed)
    peak = _status_mb("VmHWM")
    return {"rss_before_mb": round(before, 2), "rss_after_session_mb": round(after_load, 2),
            "peak_rss_mb": round(peak, 2), "session_mb": round(after_load - before, 2),
            "arena": "enabled (onnxruntime default)"}


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], int(sys.argv[2]), sys.argv[3])))

"""How trustworthy is `edgekd bench` (issue 17)? Four figures, on this host:

1. Harness overhead: bench's timing loop against a bare `session.run` loop over the same feeds and session,
   alternated in rounds (mean per run; target <= 2%), for models from 13 us to a few ms.
2. Memory: bench's peak-RSS probe against `/usr/bin/time -v`'s maximum RSS of a plain script that loads the
   same model and runs it the same 20 times (target within 5%).
3. Repeatability: the same `edgekd.bench` run twice; the spread of each model's p50 (target within 10%).
4. The full demo report: teacher PyTorch/ONNX, student fp32/int8, CPU and OpenVINO EPs, 1 and 2 threads, batch
   1 and 8, timed end to end as a user runs it (target under 3 minutes on 2 cores). The OpenVINO EP replaces the
   onnxruntime package, so this step runs in a venv of its own with torch and onnxruntime-openvino
   ($TMPDIR/edgekd_bench_ov, built once; --no-ov skips it).

Usage: python benchmarks/bench_harness.py [--no-ov]  ->  results/bench_harness.json
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the builders the tests use
import real_models  # noqa: E402

import edgekd  # noqa: E402
from edgekd.deploy import measure as B  # noqa: E402
from edgekd.deploy.runtime import session  # noqa: E402
from edgekd.models.io import ModelIO, bind, timing_feed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 11


def _feed(path: Path, data: Path | None) -> dict[str, np.ndarray]:
    io = ModelIO.from_onnx(path)
    arrays = {}
    if data is not None:
        with np.load(data) as f:
            arrays = {k: f[k] for k in f.files if k in io.input_names}
    return timing_feed(io, bind(io, arrays, shapes={}, source=str(data), complete=False), 1)


def overhead(path: Path, feed: dict, window_s: float = 0.5) -> dict:
    """Mean ms per run: a bare loop (one perf_counter around N runs) against bench's loop, alternating, each
    loop about `window_s` long (shorter windows measure the machine's noise, not the harness)."""
    sess = session(path, 1)
    timed = B.onnx_timed(sess, [feed])
    t0 = time.perf_counter()
    for _ in range(50):
        sess.run(None, feed)
    runs = max(20, int(window_s / ((time.perf_counter() - t0) / 50)))
    def bare_loop() -> float:
        t0 = time.perf_counter()
        for _ in range(runs):
            sess.run(None, feed)
        return (time.perf_counter() - t0) * 1000 / runs

    def harness_loop() -> float:
        return B.interleave({"m": timed}, 5, runs, 60.0, rounds=1)["m"]["mean"]

    pairs = []
    for r in range(ROUNDS):  # each round both loops, the order alternating; the median of the rounds' ratios
        b, h = (bare_loop(), harness_loop()) if r % 2 else reversed((harness_loop(), bare_loop()))
        pairs.append((b, h))
    ratios = [h / b for b, h in pairs]
    return {"bare_mean_ms": float(np.median([b for b, _ in pairs])),
            "harness_mean_ms": float(np.median([h for _, h in pairs])), "overhead": float(np.median(ratios)) - 1,
            "rounds": ROUNDS, "runs_per_loop": runs}


PLAIN = """import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
sess = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
with np.load(sys.argv[2]) as f:
    feed = {k: f[k] for k in f.files}
for _ in range(20):
    sess.run(None, feed)
"""


def memory(path: Path, feed: dict) -> dict:
    """bench's probe against /usr/bin/time -v over a plain script doing the same."""
    with tempfile.TemporaryDirectory() as td:
        np.savez(Path(td) / "feed.npz", **feed)
        (Path(td) / "plain.py").write_text(PLAIN)
        res = subprocess.run(["/usr/bin/time", "-v", sys.executable, str(Path(td) / "plain.py"), str(path),
                              str(Path(td) / "feed.npz")], capture_output=True, text=True, check=True)
    kb = next(int(ln.split(":")[1]) for ln in res.stderr.splitlines() if "Maximum resident set size" in ln)
    probe = B.peak_memory(path, 1, feed)
    return {"time_v_max_rss_mb": kb / 1024, "probe_peak_rss_mb": probe["peak_rss_mb"],
            "probe_delta_mb": probe["delta_mb"], "difference": probe["peak_rss_mb"] / (kb / 1024) - 1}


def repeatability(run: Path) -> dict:
    """The same bench twice: each model's p50 in both, and the largest relative spread."""
    one = edgekd.bench(run, threads="1", memory=False).report["models"]
    two = edgekd.bench(run, threads="1", memory=False).report["models"]
    per = {k: {"p50_a": one[k]["latency_ms"]["p50"], "p50_b": two[k]["latency_ms"]["p50"],
               "spread": abs(two[k]["latency_ms"]["p50"] / one[k]["latency_ms"]["p50"] - 1)} for k in one}
    return {"models": per, "max_spread": max(v["spread"] for v in per.values())}


def ov_venv() -> Path:
    """A venv with torch and onnxruntime-openvino (they cannot share .venv: it replaces onnxruntime)."""
    venv = Path(tempfile.gettempdir()) / "edgekd_bench_ov"
    py = venv / "bin" / "python"
    if not (venv / "ok").is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(py), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "onnxruntime-openvino>=1.20,<1.25", "onnx>=1.17,<1.25", "onnxscript>=0.6.2,<0.9",
                        "click>=8.1,<9", "rich>=13,<16", "numpy>=1.26,<3", "scikit-learn>=1.4,<2",
                        "pillow>=10,<14", "matplotlib>=3.8,<4"], check=True)
        subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
        (venv / "ok").write_text("")
    return py


def full_report(run: Path) -> dict:
    """`edgekd bench RUN --ep cpu,openvino --threads 1,2 --batch 1,8 --profile raspberry-pi-4`, wall clock."""
    py = ov_venv()
    cmd = [str(py), "-m", "edgekd", "bench", str(run), "--ep", "cpu,openvino", "--threads", "1,2", "--batch", "1,8",
           "--profile", "raspberry-pi-4", "--json"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    rep = json.loads(res.stdout)
    return {"command": "edgekd bench RUN --ep cpu,openvino --threads 1,2 --batch 1,8 --profile raspberry-pi-4",
            "wall_s": wall, "records": len(rep["records"]), "models": sorted(rep["models"]),
            "plots": rep.get("report", {}).get("plots"), "verdict": rep["verdict"]}


def main() -> None:
    with tempfile.TemporaryDirectory() as td:
        root = Path(td)
        t0 = time.perf_counter()
        run = root / "demo"
        edgekd.demo(str(run), show_progress=False)
        demo_s = time.perf_counter() - t0
        text, text_data = real_models.text(root)
        seg, _ = real_models.segmenter(root)
        models = {"demo student_fp32 (MLP)": (run / "student.onnx", None),
                  "demo teacher_onnx (CNN)": (run / "teacher.onnx", None),
                  "text classifier (int64 ids)": (text, text_data),
                  "segmenter 1x3x320x320": (seg, None)}
        out: dict = {"host": B.host_info(), "overhead": {}, "memory": {}}
        for name, (path, data) in models.items():
            feed = _feed(path, data) if "segmenter" not in name else \
                {"pixels": np.random.default_rng(0).standard_normal((1, 3, 320, 320), dtype=np.float32)}
            out["overhead"][name] = overhead(path, feed)
            out["memory"][name] = memory(path, feed)
            print(f"{name}: overhead {out['overhead'][name]['overhead']:+.2%}, memory probe vs time -v "
                  f"{out['memory'][name]['difference']:+.2%} ({out['memory'][name]['probe_peak_rss_mb']:.1f} vs "
                  f"{out['memory'][name]['time_v_max_rss_mb']:.1f} MB)", flush=True)
        out["repeatability"] = repeatability(run)
        print(f"repeatability: largest p50 spread {out['repeatability']['max_spread']:.1%}", flush=True)
        if "--no-ov" not in sys.argv:
            out["full_report"] = {**full_report(run), "demo_s": demo_s}
            print(f"full demo report: {out['full_report']['wall_s']:.1f} s for {out['full_report']['records']} "
                  f"records (the demo run itself: {demo_s:.1f} s)", flush=True)
    print(f"wrote {write_result('bench_harness', out)}")


if __name__ == "__main__":
    main()

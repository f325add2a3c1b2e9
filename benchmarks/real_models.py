"""Models shaped like real ones through every step (issue 13): does each step take them, how long does each
step take, and what do bench and quantize measure on their real input shapes.

Builds the models the tests build (tests/real_models.py: a 3-input VAD with state and int64 sample rate, a
batch-1 CNN at opset 12, a segmenter with symbolic H x W at opset 11, a YOLO-style detector, an int64 text
classifier), runs `edgekd export`, `predict`, `bench` and `quantize` on each through the Python API, then
times fp32 against int8 side by side (interleaved rounds, 1 thread, batch 1). The segmenter is also timed at
1 x 1, what bench fed a symbolic-H x W model before this issue, against its real 320 x 320.
Usage: python benchmarks/real_models.py  ->  results/real_models.json
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the builders the tests use
import real_models  # noqa: E402

import edgekd  # noqa: E402
from edgekd.deploy.measure import host_info, interleaved_p50  # noqa: E402
from edgekd.models.io import ModelIO, bind, timing_feed  # noqa: E402

SHAPES = {"segmenter": ["pixels=1x3x320x320"], "text": ["input_ids=1x16"]}


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _shapes(specs: list[str]) -> dict[str, list[int]]:
    return {s.split("=")[0]: [int(d) for d in s.split("=")[1].split("x")] for s in specs}


def one(name: str, build, root: Path) -> dict:
    """Every step on one model, then fp32 against int8 side by side."""
    path, data = build(root)
    shape = SHAPES.get(name, [])
    row: dict = {}
    _, row["export_s"] = _timed(lambda: edgekd.export(path, shape=shape))
    pred, row["predict_s"] = _timed(lambda: edgekd.predict_latency(str(path), "raspberry-pi-4",
                                                                   shapes=_shapes(shape)))
    row["predicted_pi4_ms"] = pred.latency_ms
    b, row["bench_s"] = _timed(lambda: edgekd.bench(path, data=str(data), runs=50).report)
    m = b["models"]["model"]
    row.update(bench_p50_ms=m["latency_ms"]["p50"], inputs=m["inputs"], output_kind=m["output_kind"],
               peak_rss_mb=(m.get("memory") or {}).get("peak_rss_mb"))
    q_path = root / f"{name}.int8.onnx"
    q, row["quantize_s"] = _timed(lambda: edgekd.quantize(path, data=str(data), max_drop=0.2, mode="static",
                                                          allow_slower=True, output=str(q_path)).details)
    row.update(gate_metric=q["metric"], gate_drop=q["accuracy_drop"], chosen=q["chosen"])
    io = ModelIO.from_onnx(path)
    with np.load(data) as f:
        arrays = {k: f[k] for k in f.files if k != "y"}
    feed = timing_feed(io, bind(io, arrays), 1)
    if name == "segmenter":
        feed = {"pixels": np.random.default_rng(0).standard_normal((1, 3, 320, 320)).astype(np.float32)}
    fp32_ms, int8_ms = interleaved_p50([path, q_path], feed, runs=60, max_seconds=1.0)
    row.update(fp32_p50_ms=fp32_ms, int8_p50_ms=int8_ms, int8_speedup=fp32_ms / int8_ms)
    if name == "segmenter":  # the same model at its real size and at the 1 x 1 dummy bench used to feed it
        tiny = {"pixels": np.zeros((1, 3, 1, 1), np.float32)}
        real_ms, dummy_ms = interleaved_p50([path, path], [feed, tiny], runs=60, max_seconds=1.0)
        row.update(real_320_p50_ms=real_ms, dummy_1x1_p50_ms=dummy_ms)
    print(f"{name}: export {row['export_s']:.2f} s, predict {row['predict_s']:.2f} s, bench "
          f"{row['bench_s']:.2f} s, quantize {row['quantize_s']:.2f} s; fp32 {row['fp32_p50_ms']:.3f} ms, "
          f"int8 {row['int8_p50_ms']:.3f} ms (x{row['int8_speedup']:.2f}), gate {row['gate_metric']} "
          f"drop {row['gate_drop']:.4f}", flush=True)
    return row


def main() -> None:
    with tempfile.TemporaryDirectory() as td:
        rows = {name: one(name, build, Path(td)) for name, build in real_models.BUILDERS.items()}
    if "segmenter" in rows:
        r = rows["segmenter"]
        print(f"segmenter at its real 320x320: {r['real_320_p50_ms']:.2f} ms; at the 1x1 dummy bench used to feed "
              f"it: {r['dummy_1x1_p50_ms']:.3f} ms")
    host = host_info()
    print(f"host: {host.get('cpu')} ({host.get('cpu_count')} CPUs; {', '.join(host.get('int8_flags', []))})")
    write_result("real_models", {"benchmark": "real_models", "host": host, "models": rows})


if __name__ == "__main__":
    main()

"""How good is the latency predictor (issue 3)?

1. Calibrate a `host` profile on this machine (`edgekd profiles calibrate`).
2. Build >= 25 held-out models the calibration never saw (MLPs, CNNs with and without depthwise convs,
   small transformer encoders), export them to ONNX, make int8 (static QDQ) versions, and for batch 1 and 8
   and 1 and 2 threads compare predicted with measured latency.
3. Report the share within +-10% / +-20%, the median absolute error and Spearman's rank correlation, for
   the calibrated profile and for its roofline alone (kernel tables dropped). The held-out models are timed
   in the same interleaved rounds as the calibration suite (this VM's speed drifts over minutes), with
   onnxruntime's thread spinning off as calibration times them, and once more alone afterwards: that second
   pass against the first is the machine's noise floor and drift; the CPU time the hypervisor gave other
   guests meanwhile (steal, from /proc/stat) is reported too. All of it also per thread count (`by_threads`):
   on a shared VM the 2-thread points are the ones two passes disagree on (see thread_repeatability.py).
4. Predict MobileNetV2-1.0 (224x224) and a BERT-base-sized encoder (seq 128) on the datasheet
   `raspberry-pi-4` profile next to published measurements.

Usage: python benchmarks/predictor_accuracy.py [--quick]
Writes benchmarks/results/predictor_accuracy.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import write_result  # noqa: E402
from zoo import bert_encoder, mobilenet_v2  # noqa: E402

from edgekd.deploy.measure import host_info  # noqa: E402
from edgekd.deploy.quantize import host_preset  # noqa: E402
from edgekd.latency.calibrate import calibrate  # noqa: E402
from edgekd.latency.predictor import predict_latency  # noqa: E402
from edgekd.profiles import Profile, load  # noqa: E402


def mlp(*widths):
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def cnn(chans, hw, in_ch=3, classes=10):
    layers, c = [], in_ch
    for i, o in enumerate(chans):
        layers += [nn.Conv2d(c, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
        if i % 2 == 1:
            layers.append(nn.MaxPool2d(2))
        c = o
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


class Encoder(nn.Module):
    def __init__(self, d, layers, heads, classes=4):
        super().__init__()
        block = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.enc(x).mean(1))


def held_out() -> list[tuple[str, nn.Module, tuple]]:
    """(name, model, input shape without batch) for the models calibration never saw."""
    from edgekd.models.students import _mobilenet, _resnet

    torch.manual_seed(0)
    return [
        ("mlp_64-256-10", mlp(64, 256, 10), (64,)),
        ("mlp_784-512-512-10", mlp(784, 512, 512, 10), (784,)),
        ("mlp_256-1024-1024-256", mlp(256, 1024, 1024, 256), (256,)),
        ("mlp_32-64-64-64-4", mlp(32, 64, 64, 64, 4), (32,)),
        ("cnn_16-32_32px", cnn([16, 32], 32), (3, 32, 32)),
        ("cnn_32-32-64-64_32px", cnn([32, 32, 64, 64], 32), (3, 32, 32)),
        ("cnn_16-32-64_64px", cnn([16, 32, 64], 64), (3, 64, 64)),
        ("resnet_w0.5_32px", _resnet((3, 32, 32), 10, width=0.5, depth=1), (3, 32, 32)),
        ("resnet_w1_32px", _resnet((3, 32, 32), 10, width=1.0, depth=2), (3, 32, 32)),
        ("mobilenet_w0.5_32px", _mobilenet((3, 32, 32), 10, width=0.5, depth=0.5), (3, 32, 32)),
        ("mobilenet_w1_64px", _mobilenet((3, 64, 64), 10, width=1.0, depth=1.0), (3, 64, 64)),
        ("mobilenetv2_0.35_96px", mobilenet_v2(0.35), (3, 96, 96)),
        ("encoder_d64_l1_s16", Encoder(64, 1, 2), (16, 64)),
        ("encoder_d128_l2_s32", Encoder(128, 2, 4), (32, 128)),
        ("encoder_d256_l2_s64", Encoder(256, 2, 4), (64, 256)),
    ]


def export(model: nn.Module, shape: tuple, path: Path) -> None:
    model.eval()
    torch.onnx.export(model, (torch.randn(2, *shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def int8(src: Path, dst: Path, x: np.ndarray, preset: str) -> None:
    """Static int8 (QDQ) as edgekd's quantize makes it, calibrated on `x`."""
    from edgekd.deploy.quantize import Attempt, quantize_file

    quantize_file(src, dst, Attempt(preset, preset), "static", x)


def sampled_held_out(count: int, seed: int) -> list[tuple[str, object, dict]]:
    """Whole networks of calibration's own generator (edgekd.latency.networks) at another seed, each at batch
    1 and at batch 8: (name, onnx model, feeds)."""
    from edgekd.latency.networks import sampled_networks

    out = []
    for batch in (1, 8):
        for m in sampled_networks(count, seed, batches=(batch,)):
            out.append((m.name, m.model, m.feeds))
    return out


def plain_ms(paths: list[Path], feeds: list[dict], threads: int, rounds: int = 5,
             budget_s: float = 0.06) -> list[float]:
    """Each model timed by plain onnxruntime code (default session options but the thread count, sess.run in
    a loop), in interleaved rounds: per round the median of a burst of runs, then the median over rounds."""
    import onnxruntime as ort

    sessions = []
    for path in paths:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        sessions.append(ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]))
    for sess, feed in zip(sessions, feeds):
        sess.run(None, feed)
    per_round = [[] for _ in sessions]
    for _ in range(rounds):
        for i, (sess, feed) in enumerate(zip(sessions, feeds)):
            times, t_end = [], time.perf_counter() + budget_s
            while len(times) < 3 or (time.perf_counter() < t_end and len(times) < 200):
                t0 = time.perf_counter()
                sess.run(None, feed)
                times.append(time.perf_counter() - t0)
            per_round[i].append(float(np.median(times)))
    return [float(np.median(r)) * 1e3 for r in per_round]


class Load:
    """Another process spinning on one core for the duration (a busy neighbour)."""

    def __enter__(self):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def cpu_ticks() -> tuple[int, int] | None:
    """(all, stolen) CPU ticks so far from /proc/stat: the share the hypervisor gave to other guests while
    this benchmark ran says how noisy its timings were (None where there is no /proc)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def pi4_reference(td: Path) -> list[dict]:
    """Datasheet raspberry-pi-4 predictions for two well-known models, next to published figures."""
    rows = []
    mnv2 = td / "mobilenetv2.onnx"
    export(mobilenet_v2(1.0), (3, 224, 224), mnv2)
    for th, published, src in ((1, 93.48, "ncnn benchncnn, Pi 4B 1 thread (fp32), shared/research/latency.md 3.1"),
                               (4, 61.88, "ncnn benchncnn, Pi 4B 4 threads (fp32), latency.md 3.1"),
                               (4, 44.0, "XNNPACK end2end_bench, Pi 4 multi-thread (fp32), latency.md 3.2")):
        p = predict_latency(str(mnv2), "raspberry-pi-4", threads=th)
        rows.append({"model": "MobileNetV2-1.0 224x224", "threads": th, "predicted_ms": round(p.latency_ms, 1),
                     "band_ms": [round(p.low_ms, 1), round(p.high_ms, 1)], "published_ms": published,
                     "source": src, "ratio": round(p.latency_ms / published, 2)})
    bert = td / "bert.onnx"
    export(bert_encoder(), (128, 768), bert)
    for th in (1, 4):
        p = predict_latency(str(bert), "raspberry-pi-4", threads=th)
        rows.append({"model": "BERT-base-sized encoder (12x768, seq 128)", "threads": th,
                     "predicted_ms": round(p.latency_ms, 1), "band_ms": [round(p.low_ms, 1), round(p.high_ms, 1)],
                     "published_ms": None, "source": "no published Pi 4 measurement found in shared/research/",
                     "ratio": None})
    return rows


def _score(pred, meas) -> dict:
    ratio = np.asarray(pred) / np.asarray(meas)
    err = np.abs(ratio - 1)
    return {"within_10": float((err <= 0.1).mean()), "within_20": float((err <= 0.2).mean()),
            "median_abs_error": float(np.median(err)), "bias": float(np.median(ratio) - 1),
            "spearman": spearman(pred, meas)}


def int8_speedups(points: list[dict]) -> dict:
    """The int8 speed-up predicted (fp32 / int8 predictions, what `predict --int8` reports) against the one
    measured, per model and batch timed both ways (issue 30's target: within +-20% on >= 80%)."""
    pairs: dict = {}
    for p in points:
        pairs.setdefault((p["model"], p["batch"]), {})[p["dtype"]] = p
    both = [v for v in pairs.values() if {"fp32", "int8"} <= set(v)]
    pred = [v["fp32"]["predicted_ms"] / v["int8"]["predicted_ms"] for v in both]
    meas = [v["fp32"]["measured_ms"] / v["int8"]["measured_ms"] for v in both]
    return {"pairs": len(both), **_score(pred, meas), "target_within_20": ">= 0.80"}


def _groups(points: list[dict], key: str) -> dict:
    return {v: _score([p["predicted_ms"] for p in points if p[key] == v],
                      [p["measured_ms"] for p in points if p[key] == v])
            for v in sorted({p[key] for p in points}, key=str)}


def held_out_models(td: Path, preset: str, quick: bool) -> list[dict]:
    """Every held-out model as fp32 and static int8, at batch 1 and 8: torch-exported nets (their exporter's
    graphs) and calibration's network families at another seed. (path, feeds, and what it is.)"""
    models = []
    for name, model, shape in (held_out()[::3] if quick else held_out()):
        path = td / f"{name}.onnx"
        export(model, shape, path)
        for batch in (1, 8):
            x = np.random.default_rng(1).normal(size=(batch, *shape)).astype(np.float32)
            models.append({"model": name, "family": name.split("_")[0], "path": path, "batch": batch,
                           "feeds": {"input": x}})
    import onnx

    for name, model, feeds in sampled_held_out(2 if quick else 5, seed=101):
        path = td / f"{name}.onnx"
        onnx.save(model, str(path))
        models.append({"model": name, "family": name.split("_")[1], "path": path,
                       "batch": int(next(iter(feeds.values())).shape[0]), "feeds": feeds})
    out = []
    for m in models:
        q = m["path"].with_suffix(".int8.onnx")
        if not q.is_file():
            (name, x), = m["feeds"].items()
            rng = np.random.default_rng(2)
            # a fixed-batch network calibrates on feeds of its own shape; the torch exports on 16 samples
            calib = [{name: rng.random(x.shape, dtype=np.float32)} for _ in range(4)] if \
                m["path"].name.startswith("net_") else rng.normal(size=(16, *x.shape[1:])).astype(np.float32)
            int8(m["path"], q, calib, preset)
        out += [{**m, "dtype": "fp32"}, {**m, "dtype": "int8", "path": q}]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer models (smoke run)")
    ap.add_argument("--load", action="store_true",
                    help="another process spins on one core during calibration and measurement")
    args = ap.parse_args()
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    t0, ticks0 = time.perf_counter(), cpu_ticks()
    preset = host_preset()
    threads = 1
    with tempfile.TemporaryDirectory() as tds, (Load() if args.load else contextlib.nullcontext()):
        td = Path(tds)
        points = held_out_models(td, preset, args.quick)
        cal = calibrate(out / "host.toml", name="host")
        print(f"calibrated {out / 'host.toml'} in {cal['seconds']} s ({cal['points']} micro-benchmarks; "
              f"whole networks: leave-one-out median error {cal.get('whole_model_median_error', float('nan')):.1%}"
              f", within 20% {cal.get('whole_model_within_20', float('nan')):.0%})", flush=True)
        prof = load(str(out / "host.toml"))
        no_networks = Profile({**prof.data, "kernels": {k: v for k, v in prof.data.get("kernels", {}).items()
                                                         if k != "network"}}, prof.path)
        roofline_only = Profile({k: v for k, v in prof.data.items() if k != "kernels"}, prof.path)
        for p in points:
            p["predicted_ms"] = predict_latency(str(p["path"]), prof, threads, p["batch"]).latency_ms
            p["kernels_only_ms"] = predict_latency(str(p["path"]), no_networks, threads, p["batch"]).latency_ms
            p["roofline_ms"] = predict_latency(str(p["path"]), roofline_only, threads, p["batch"]).latency_ms
        paths, feeds = [p["path"] for p in points], [p["feeds"] for p in points]
        first = plain_ms(paths, feeds, threads)
        later = plain_ms(paths, feeds, threads)  # a second pass: the machine's noise floor
        ref = [] if args.quick else pi4_reference(td)
    for p, a, b in zip(points, first, later):
        p.update(measured_ms=a, later_ms=b, error=p["predicted_ms"] / a - 1, threads=threads)
        del p["feeds"]
        p["path"] = p["path"].name
        print(f"{p['model']:34s} {p['dtype']} b{p['batch']}  predicted {p['predicted_ms']:8.3f} ms  measured "
              f"{a:8.3f} ms  {p['error']:+.1%}   (without the network fit {p['kernels_only_ms']:8.3f}, "
              f"roofline only {p['roofline_ms']:8.3f}, measured again {b:8.3f})")
    meas = [p["measured_ms"] for p in points]
    summary = {"models": len({p["model"] for p in points}), "points": len(points), "threads": threads,
               "load": "one core spinning in another process" if args.load else "none",
               **_score([p["predicted_ms"] for p in points], meas),
               "without_network_fit": _score([p["kernels_only_ms"] for p in points], meas),
               "roofline_only": _score([p["roofline_ms"] for p in points], meas),
               "later_vs_first_measurement": _score([p["later_ms"] for p in points], meas),
               "by_family": _groups(points, "family"), "by_dtype": _groups(points, "dtype"),
               "by_batch": _groups(points, "batch"), "int8_speedup": int8_speedups(points),
               "targets": {"within_20": ">= 0.90", "within_10": ">= 0.60", "median_abs_error": "<= 0.08",
                           "bias": "within +-0.05", "calibration_seconds": "<= 120"},
               "calibration_seconds": cal["seconds"], "seconds": round(time.perf_counter() - t0, 1)}
    ticks1 = cpu_ticks()
    if ticks0 and ticks1 and ticks1[0] > ticks0[0]:
        summary["cpu_steal_share"] = round((ticks1[1] - ticks0[1]) / (ticks1[0] - ticks0[0]), 4)
    print(json.dumps({k: v for k, v in summary.items() if not k.startswith("by_")}, indent=1))
    for r in ref:
        print(r)
    write_result("predictor_accuracy_load" if args.load else "predictor_accuracy",
                 {"benchmark": "predictor_accuracy", "host": host_info(), "profile": str(out / "host.toml"),
                  "calibration": cal, "summary": summary, "points": points, "raspberry_pi_4_reference": ref})


if __name__ == "__main__":
    main()

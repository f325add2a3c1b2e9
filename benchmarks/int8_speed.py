"""Does int8 make models faster on this host (issue 16)? fp32 against int8 per preset and mode, side by side.

Models shaped like real ones (random weights): MobileNetV2-1.0 at 224 x 224, the tests' segmenter at 128 x 128
(dense output), the tests' YOLO-style detector (concatenated boxes + scores), and a 4-layer transformer encoder
(d 256, seq 64). Each is quantized with onnxruntime through edgekd (static QDQ with the u8s8, s8s8 and
u8s8-reduce-range presets with minmax calibration, and entropy and percentile calibration with this host's
preset; dynamic too for the encoder) and timed against fp32 in interleaved rounds at
1 thread, batch 1 and 16; quality is agreement with fp32 by the output's own metric (top-1 for logits,
cosine for maps and for the detector's boxes and scores apart), and the plain cosine of the outputs (random
weights make near-tied logits, whose top-1 says little).
Usage: python benchmarks/int8_speed.py  ->  results/int8_speed.json (about 6 minutes)
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import write_result
from zoo import _Bert, mobilenet_v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the builders the tests use
import real_models  # noqa: E402

from edgekd.deploy.export import to_onnx  # noqa: E402
from edgekd.deploy.measure import fidelity, host_info, interleaved_p50, mean_cosine  # noqa: E402
from edgekd.deploy.quantize import Attempt, host_preset, quantize_file  # noqa: E402
from edgekd.deploy.runtime import session  # noqa: E402

PRESETS = ["u8s8", "s8s8", "u8s8-reduce-range"]


def models() -> dict[str, tuple[torch.nn.Module, tuple[int, ...], str]]:
    torch.manual_seed(0)
    return {"mobilenet_v2_224": (mobilenet_v2(1.0), (3, 224, 224), "logits"),
            "segmenter_128": (real_models.Segmenter(), (3, 128, 128), "dense"),
            "detector_64": (real_models.Detector(), (3, 64, 64), "boxes"),
            "encoder_d256_seq64": (_Bert(256, 4, 4), (64, 256), "logits")}


def main() -> None:
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as td:
        for name, (model, shape, kind) in models().items():
            x = rng.standard_normal((64, *shape)).astype(np.float32)
            fp32 = Path(td) / f"{name}.onnx"
            to_onnx(model.eval(), x[:2], fp32, exporter="torchscript")
            ref = session(fp32).run(None, {"input": x[:16]})[0]
            plans = [("static", p, "minmax") for p in PRESETS] + [("static", host_preset(), c) for c in
                                                                   ("entropy", "percentile")]
            plans += [("dynamic", "u8s8", "minmax")] if "encoder" in name else []
            cands = []
            for mode, preset, calibration in plans:
                q = Path(td) / f"{name}.{mode}.{preset}.{calibration}.onnx"
                quantize_file(fp32, q, Attempt(preset, preset, calibration=calibration), mode, x[:32])
                out = session(q).run(None, {"input": x[:16]})[0]
                cands.append((f"{mode}/{calibration}", preset, q, (*fidelity(ref, out, kind), mean_cosine(ref, out))))
            for batch in (1, 16):
                feed = {"input": x[:batch]}
                ms = interleaved_p50([fp32, *[c[2] for c in cands]], feed, threads=1, rounds=5, runs=30,
                                     max_seconds=0.5)
                for (mode, preset, q, fid), t in zip(cands, ms[1:]):
                    row = {"model": name, "batch": batch, "mode": mode, "preset": preset, "fp32_ms": ms[0],
                           "int8_ms": t, "speedup": ms[0] / t, "size_ratio": q.stat().st_size / fp32.stat().st_size,
                           "metric": fid[0], "agreement": fid[1], "cosine": fid[2]}
                    rows.append(row)
                    print(f"{name} batch {batch} {mode} {preset}: fp32 {ms[0]:.3f} ms, int8 {t:.3f} ms "
                          f"(x{ms[0] / t:.2f}), size x{row['size_ratio']:.2f}, {fid[0]} {fid[1]:.4f}, "
                          f"cosine {fid[2]:.4f}", flush=True)
    host = host_info()
    print(f"host: {host.get('cpu')} ({host.get('cpu_count')} CPUs; {', '.join(host.get('int8_flags', []))}); "
          f"edgekd's preset for it: {host_preset()}")
    write_result("int8_speed", {"benchmark": "int8_speed", "host": host, "host_preset": host_preset(), "rows": rows})


if __name__ == "__main__":
    main()

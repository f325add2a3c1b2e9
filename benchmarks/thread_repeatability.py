"""How repeatable are 1- and 2-thread timings on this machine (issue 3's noise floor)?

Times five dense convs (0.3-5 ms each, compute-bound, so two real cores run them ~1.9x faster) at 1 and 2
threads, with onnxruntime's spinning off and IO binding, exactly as `edgekd profiles calibrate` times kernels:
several passes, each the lowest burst median over interleaved rounds. If the 2-thread speed-up of the same
kernels, or their 1-thread times, move from pass to pass, the machine's cores come and go (on a shared VM:
vCPUs whose host cores other guests are using), and no predictor calibrated on it can be checked to better
than that spread: a pass takes about 4 s, calibration about 100.

Usage: python benchmarks/thread_repeatability.py [--passes 6] [--rounds 24]
Writes benchmarks/results/thread_repeatability.json.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import write_result  # noqa: E402

from edgekd.deploy.runtime import session  # noqa: E402
from edgekd.latency.calibrate import Bound, measure_interleaved  # noqa: E402
from edgekd.latency.micro import conv, nothing  # noqa: E402

SHAPES = [(32, 32, 32, 3, 8), (32, 160, 28, 3, 4), (256, 160, 16, 1, 8), (64, 128, 56, 1, 4), (16, 16, 32, 3, 4)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=24, help="interleaved rounds per pass (calibrate uses 8)")
    args = ap.parse_args()
    names, jobs = [], []
    with tempfile.TemporaryDirectory() as td:
        for cin, cout, hw, k, batch in SHAPES:
            m = conv(cin, cout, hw, k, batch=batch)
            path = Path(td) / f"{m.name}.onnx"
            onnx.save(m.model, str(path))
            names.append(m.name)
            jobs += [Bound(session(path, th, spin=False), m.feeds) for th in (1, 2)]
        empty = nothing()
        onnx.save(empty.model, str(Path(td) / "empty.onnx"))
        jobs += [Bound(session(Path(td) / "empty.onnx", th, level="disable", spin=False), empty.feeds) for th in (1, 2)]
        passes = []
        for i in range(args.passes):
            s = measure_interleaved(jobs, rounds=args.rounds)
            own = [max(t - s[-2 + j % 2], 1e-9) for j, t in enumerate(s[:-2])]  # less the bound run cost
            passes.append({n: {"t1_us": own[2 * k] * 1e6, "t2_us": own[2 * k + 1] * 1e6,
                               "speedup": own[2 * k] / own[2 * k + 1]} for k, n in enumerate(names)})
            print(f"pass {i + 1}: " + "  ".join(f"{v['t1_us']:5.0f}/{v['t2_us']:5.0f} us {v['speedup']:.2f}x"
                                               for v in passes[-1].values()), flush=True)
    summary = {}
    for n in names:
        sp = np.array([p[n]["speedup"] for p in passes])
        t1 = np.array([p[n]["t1_us"] for p in passes])
        t2 = np.array([p[n]["t2_us"] for p in passes])
        summary[n] = {"speedup_min": round(float(sp.min()), 2), "speedup_max": round(float(sp.max()), 2),
                      "t1_spread": round(float(t1.max() / t1.min() - 1), 3),
                      "t2_spread": round(float(t2.max() / t2.min() - 1), 3)}
        print(f"{n:28s} 2-thread speed-up {sp.min():.2f}-{sp.max():.2f}x; max/min across passes: "
              f"1 thread {summary[n]['t1_spread']:+.1%}, 2 threads {summary[n]['t2_spread']:+.1%}")
    write_result("thread_repeatability", {"benchmark": "thread_repeatability", "passes": args.passes,
                                          "rounds": args.rounds, "per_kernel": summary, "raw": passes})


if __name__ == "__main__":
    main()

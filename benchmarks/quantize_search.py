"""Quantize's search on heads shaped like real ones (issue 26, part 3): what the up-front Concat rule, the
all-node ranking and the bisection buy, and what a refusal costs.

1. A YOLOv8-style head (box coordinates 0-640 and sigmoid scores concatenated, 64 x 64 input), static u8s8:
   the gate's drop and speed-up with the Concat rule off (RANGE_RATIO = inf, as before this issue) and on.
2. The tests' segmenter with no drop allowed (`--max-drop 0`): candidates tried, seconds, and where mixed
   precision stopped (the fewest nodes kept in fp32).
Usage: python benchmarks/quantize_search.py  ->  results/quantize_search.json (about a minute)
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from common import write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import real_models  # noqa: E402

import edgekd  # noqa: E402
from edgekd.deploy import quantize as Q  # noqa: E402
from edgekd.deploy.measure import host_info  # noqa: E402


def run(path, data, out, **kw) -> dict:
    t0 = time.perf_counter()
    q = edgekd.quantize(path, data=str(data), output=str(out), **kw)
    d = q.details
    scored = [a for a in d["attempts"] if "drop" in a]
    best = min(scored, key=lambda a: a["drop"])
    return {"written": q.written, "seconds": round(time.perf_counter() - t0, 1), "candidates": len(scored),
            "best": best["name"], "best_drop": best["drop"], "best_fp32_nodes": len(best["fp32_nodes"]),
            "speedup": (d.get("speed") or {}).get("speedup") or best.get("speedup"),
            "notes": d.get("notes", []), "verdict": d["verdict"]}


def main() -> None:
    rows = {}
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        path, data = real_models.yolo(td)
        saved = Q.RANGE_RATIO
        Q.RANGE_RATIO = float("inf")  # the rule off: what the gate did before
        rows["yolo_concat_rule_off"] = run(path, data, td / "a.onnx", mode="static", preset="u8s8")
        Q.RANGE_RATIO = saved
        rows["yolo_concat_rule_on"] = run(path, data, td / "b.onnx", mode="static", preset="u8s8",
                                          allow_slower=True)
        seg, seg_data = real_models.segmenter(td)
        rows["segmenter_max_drop_0"] = run(seg, seg_data, td / "c.onnx", mode="static", preset="u8s8",
                                           shape=["pixels=1x3x48x48"], max_drop=0.0)
    for k, r in rows.items():
        print(f"{k}: {r['candidates']} candidates in {r['seconds']} s; best {r['best']} (fp32 nodes "
              f"{r['best_fp32_nodes']}) drop {r['best_drop']:.2%}, speed-up {r['speedup']}; written {r['written']}")
        print(f"  {r['verdict']}")
    write_result("quantize_search", {"benchmark": "quantize_search", "host": host_info(), "rows": rows})


if __name__ == "__main__":
    main()

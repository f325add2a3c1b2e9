"""`edgekd compare A/bench.json B/bench.json`: did B get slower than A? Per model measured in both, the ratio of
median latencies with a bootstrap confidence interval from the timed runs themselves, so that a machine's noise
is not called a regression; `fail_if_slower` turns a regression past a threshold into exit 1, for CI."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..deploy.measure import CONFIDENCE, ratio_interval
from ..errors import EdgekdError, UsageError
from ..files import read_json, regular_or_dir
from .target import Result


@dataclass
class CompareResult(Result):
    a: str
    b: str
    rows: list[dict] = field(default_factory=list)
    only_in: dict = field(default_factory=dict)
    threshold: float | None = None
    regressions: list[str] = field(default_factory=list)
    verdict: str = ""


def read_bench(path: str | os.PathLike) -> dict:
    """A bench.json (or a run directory holding one), checked for its schema version."""
    from ..deploy.measure import BENCH_SCHEMA_VERSION

    p = Path(path)
    p = p / "bench.json" if p.is_dir() else p
    if not p.exists():
        raise UsageError(f"{p} does not exist", "pass a bench.json written by `edgekd bench`, or its run")
    regular_or_dir(p, "bench report")
    report = read_json(p, dict, "a bench report (an object)", "pass a bench.json written by `edgekd bench`")
    version = report.get("schema_version") if isinstance(report, dict) else None
    if version != BENCH_SCHEMA_VERSION or not isinstance(report.get("records"), list):
        raise UsageError(f"{p} has bench schema version {version!r}; this edgekd reads version "
                         f"{BENCH_SCHEMA_VERSION}", "rerun `edgekd bench` with this edgekd to compare")
    return report


def _key(r: dict) -> str:
    """`student_int8@openvino b1 t1`: a model on an EP at batch 1 on 1 thread (only like is compared with like;
    the CPU EP and PyTorch go unnamed)."""
    at = "" if r.get("ep") in ("cpu", "pytorch", None) else f"@{r['ep']}"
    return f"{r.get('model')}{at} b{r.get('batch')} t{r.get('threads')}"


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _records(report: dict, where) -> list[dict]:
    """The bench's records, each checked where it is read: a forged or broken bench.json (a record that is not
    an object, a missing, NaN, negative or non-numeric latency, samples that are not numbers) is one line naming
    the record, not a comparison that passes."""
    out = []
    for i, r in enumerate(report["records"]):
        lat = r.get("latency_ms") if isinstance(r, dict) else None
        if not isinstance(lat, dict) or not _positive(lat.get("p50")):
            got = str(lat if isinstance(r, dict) else r)[:80]
            raise UsageError(f"{where}: record {i} has no positive, finite latency_ms.p50 (got {got})",
                             "rerun `edgekd bench` to write it again")
        samples = lat.get("samples_ms")
        if samples is not None and (not isinstance(samples, list) or not all(_positive(v) for v in samples)):
            raise UsageError(f"{where}: record {i} ({r.get('model')}) has samples_ms that are not all positive "
                             "finite numbers", "rerun `edgekd bench` to write it again")
        out.append(r)
    return out


def compare(a: str | os.PathLike, b: str | os.PathLike, fail_if_slower: float | None = None) -> CompareResult:
    """Compare bench B against bench A (the baseline). With `fail_if_slower` (0.05: 5%), a model whose median
    got more than that much slower, beyond the noise of its runs, raises a RegressionError (exit 1)."""
    if fail_if_slower is not None and not 0 <= fail_if_slower < 10:
        raise UsageError(f"--fail-if-slower must be a fraction in [0, 10), got {fail_if_slower}",
                         "e.g. --fail-if-slower 5% or 0.05")
    ra, rb = read_bench(a), read_bench(b)
    ka = {_key(r): r for r in _records(ra, a)}
    kb = {_key(r): r for r in _records(rb, b)}
    res = CompareResult(str(a), str(b), threshold=fail_if_slower,
                        only_in={"a": sorted(set(ka) - set(kb)), "b": sorted(set(kb) - set(ka))})
    for key in [k for k in ka if k in kb]:
        la, lb = ka[key]["latency_ms"], kb[key]["latency_ms"]
        sa, sb = la.get("samples_ms"), lb.get("samples_ms")
        if sa and sb and len(sa) >= 3 and len(sb) >= 3:
            ratio, low, high = ratio_interval(sa, sb)
        else:  # an older bench without its runs: the medians alone, and no claim about noise
            ratio = lb["p50"] / max(la["p50"], 1e-12)
            low = high = ratio
        verdict = "slower" if low > 1 else "faster" if high < 1 else "within noise"
        row = {"model": key, "a_p50_ms": la["p50"], "b_p50_ms": lb["p50"], "ratio": ratio, "low": low,
               "high": high, "verdict": verdict}
        if fail_if_slower is not None and verdict == "slower" and ratio > 1 + fail_if_slower:
            row["regression"] = True
            res.regressions.append(key)
        res.rows.append(row)
    if not res.rows:
        raise UsageError(f"{a} and {b} share no model measured on the same EP at the same batch and threads",
                         "bench the same run (or models) with the same --batch and --threads")
    res.verdict = _verdict(res)
    if res.regressions:
        raise RegressionError(res)
    return res


def _verdict(res: CompareResult) -> str:
    worst = max(res.rows, key=lambda r: r["ratio"])
    if res.regressions:
        return (f"{len(res.regressions)} regression(s) past {res.threshold:.0%}: {worst['model']} is "
                f"{worst['ratio'] - 1:.0%} slower ({worst['b_p50_ms']:.3g} vs {worst['a_p50_ms']:.3g} ms, "
                f"{CONFIDENCE:.0%} interval {worst['low']:.2f}-{worst['high']:.2f}x)")
    slower = [r for r in res.rows if r["verdict"] == "slower"]
    if slower:
        return (f"{len(slower)} of {len(res.rows)} model(s) slower beyond noise, the most {worst['model']} "
                f"({worst['ratio']:.2f}x)" + (f"; none past the {res.threshold:.0%} threshold"
                                              if res.threshold is not None else ""))
    return f"no model is slower beyond the noise of its runs ({len(res.rows)} compared)"


class RegressionError(EdgekdError):
    """B is slower than A past the threshold (exit 1); carries the full comparison for --json."""

    def __init__(self, result: CompareResult) -> None:
        super().__init__(result.verdict, "look at what changed between the two runs, or raise --fail-if-slower")
        self.result = result

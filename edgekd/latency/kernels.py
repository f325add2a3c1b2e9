"""Kernel tables: latency read off measured kernels of the same family and similar shape (nn-Meter's idea,
fitted in a 2-minute calibration instead of tens of thousands of measurements).

A roofline with one efficiency per op class cannot know that a 8-channel conv runs at a fifth of a
64-channel one, or that a one-row GEMM is bandwidth-bound. So a calibrated profile keeps, per kernel
family and dtype (conv.fp32, dwconv.int8, gemm.fp32, bmm.int8, softmax.int8, qdq.int8, ...), the shape
features of every kernel the suite ran and its measured time as a ratio to the profile's roofline. A node's
ratio is a trend fitted across its family (ridge, linear in log2 shape and log2 roofline time) plus the
residuals of its nearest measured neighbours (fading with distance), clamped to the measured range, so
shapes between and beyond the measured ones stay plausible. Thread scaling is read off the same
neighbours: the speed-up measured at the calibration's top thread count gives each node its own serial
fraction (Amdahl).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from .graph import NodeCost
from .predictor import Params, is_int8, single_thread_s

FORMAT = 2  # the [kernels] rows' layout; 2: conv dims end with the kernel variant (graph._variant)
K_NEAREST = 8
RIDGE = 0.1
FADE = 4.0  # distance (in log2 units) over which neighbours' residuals fade


def key(n: NodeCost) -> str | None:
    """The table a node's time comes from, e.g. "conv.int8"."""
    return f"{n.kernel}.{n.dtype}" if n.kernel else None


def prior_s(n: NodeCost, prm: Params) -> float:
    """The profile's roofline time of a node at one thread: what the tables correct."""
    return single_thread_s(n, prm) + prm.node_s + (prm.int8_node_s if is_int8(n) else 0.0)


def _features(dims) -> np.ndarray:
    return np.log2(np.maximum(np.asarray(dims, float), 1.0))


def dims_of(n: NodeCost, prm: Params) -> list[float]:
    """A node's table coordinates: its shape features and its roofline time in ns (the ratio to the roofline
    depends on size as much as on shape: small kernels live in cache, large ones wait for DRAM)."""
    return [*n.dims, prior_s(n, prm) * 1e9]


@dataclass
class Table:
    x: np.ndarray        # (n, d) log2 shape features
    y: np.ndarray        # (n,) log of measured / roofline time, one thread
    speedup: np.ndarray  # (n,) measured 1-thread / top-thread time (1.0 where not measured)

    def __post_init__(self):
        # the trend: log ratio linear in the log features (ridge), so shapes between and beyond the measured
        # ones follow how efficiency grows with each dimension; neighbours then correct it locally
        n, d = self.x.shape
        a = np.hstack([np.ones((n, 1)), self.x])
        reg = RIDGE * np.eye(d + 1)
        reg[0, 0] = 0.0
        self.coef = np.linalg.solve(a.T @ a + reg, a.T @ self.y) if n > d + 2 else \
            np.r_[np.median(self.y), np.zeros(d)]
        self.resid = self.y - a @ self.coef
        self.fastest_ns = float(np.min(np.exp(self.y) * np.exp2(self.x[:, -1])))  # last dim: the prior in ns

    @classmethod
    def from_rows(cls, dims, ratios, speedups) -> "Table":
        """A table from raw rows (as calibration fits them and the profile stores them)."""
        return cls(np.array([_features(d) for d in dims], float), np.log(np.asarray(ratios, float)),
                   np.asarray(speedups, float))

    def lookup(self, dims) -> tuple[float, float]:
        """(measured / roofline time ratio, speed-up at the top thread count) for a node of these dims."""
        f = _features(dims)
        if f.shape[0] != self.x.shape[1]:
            raise ValueError("feature width")
        d = np.sqrt(((self.x - f) ** 2).sum(axis=1))
        idx = np.argsort(d)[:K_NEAREST]
        w = 1.0 / (d[idx] + 0.5)
        local = (w * self.resid[idx]).sum() / w.sum() * float(np.exp(-d[idx].min() / FADE))  # fades with distance
        trend = self.coef[0] + f @ self.coef[1:]
        y = float(np.clip(trend + local, self.y.min(), self.y.max()))  # never beyond what was measured
        # and never faster than the family's fastest kernel: a ratio times a prior near zero (a 40-byte
        # Gather when the fitted per-node overhead is ~0) must not price a kernel at nothing
        floor = self.fastest_ns / max(float(dims[-1]), 1e-3)
        return max(float(np.exp(y)), floor), float((w * self.speedup[idx]).sum() / w.sum())


@dataclass
class Kernels:
    """All tables of a calibrated profile, with the thread count its speed-ups were measured at, and the
    composition factors: how much longer kernels take inside whole graphs than alone, per thread count."""
    tables: dict[str, Table]
    top_threads: int
    cores: int
    composition: dict[int, float] = field(default_factory=dict)

    def node_seconds(self, n: NodeCost, threads: int, prm: Params) -> float | None:
        """A node's time at `threads`, or None when no table holds its family (the roofline prices it)."""
        k = key(n)
        table = self.tables.get(k) if k else None
        if table is None:
            return None
        try:
            ratio, speedup = table.lookup(dims_of(n, prm))
        except ValueError:
            return None
        return ratio * prior_s(n, prm) * thread_factor(speedup, self.top_threads, threads, self.cores) * \
            self.in_graph(threads)

    def in_graph(self, threads: int) -> float:
        """The composition factor at `threads`: interpolated in 1 - 1/threads (the parallel share) between
        the thread counts it was measured at, held at the ends."""
        if not self.composition:
            return 1.0
        xs = sorted(self.composition)
        u = [1.0 - 1.0 / t for t in xs]
        return float(np.interp(1.0 - 1.0 / max(1, min(int(threads), self.cores)), u,
                               [self.composition[t] for t in xs]))


def thread_factor(speedup: float, top: int, threads: int, cores: int) -> float:
    """Amdahl's law through the measured point: at `top` threads the time is 1/speedup."""
    n = min(int(threads), cores)
    if n <= 1 or top <= 1:
        return 1.0
    serial = min(1.5, max(0.0, (top / max(speedup, 1e-3) - 1.0) / (top - 1.0)))
    return serial + (1.0 - serial) / n


def to_data(rows: dict[str, list[tuple[list[float], float, float]]], top_threads: int,
            composition: dict[int, float] | None = None) -> dict:
    """The profile's [kernels] table: per family, features, measured / roofline ratios and speed-ups; and
    the composition factors per thread count."""
    out: dict = {"format": FORMAT, "top_threads": top_threads}
    if composition:
        out["composition"] = {"threads": sorted(composition),
                              "factor": [round(composition[t], 4) for t in sorted(composition)]}
    for k, items in sorted(rows.items()):
        out[k] = {"dims": [[round(float(v), 3) for v in d] for d, _, _ in items],
                  "ratio": [float(f"{r:.5g}") for _, r, _ in items],
                  "speedup": [round(float(sp), 4) for _, _, sp in items]}
    return out


def from_profile(data: dict, where: str, cores: int) -> Kernels | None:
    """Parse (and validate) a profile's [kernels] table; None when the profile has none."""
    raw = data.get("kernels")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: `kernels` must be a table", "re-run `edgekd profiles calibrate`")
    top = raw.get("top_threads", 1)
    if not isinstance(top, int) or top < 1:
        raise UsageError(f"{where}: field `kernels.top_threads` must be an int >= 1, got {top!r}",
                         "re-run `edgekd profiles calibrate`")
    fmt = raw.get("format", 1)
    if fmt != FORMAT:
        raise UsageError(f"{where}: field `kernels.format` is {fmt!r}, this edgekd reads kernel tables of format "
                         f"{FORMAT}", "re-run `edgekd profiles calibrate` to measure this device's kernels again")
    tables = {name: _table(t, f"{where}: table `kernels.{name}`") for name, t in raw.items()
              if name not in ("format", "top_threads", "composition")}
    return Kernels(tables, top, cores, _composition(raw.get("composition", {}), f"{where}: `kernels.composition`"))


def _composition(c, where: str) -> dict[int, float]:
    hint = "re-run `edgekd profiles calibrate` to rewrite it"
    threads, factor = (c.get("threads", []), c.get("factor", [])) if isinstance(c, dict) else (None, None)
    if not (isinstance(threads, list) and isinstance(factor, list)) or len(threads) != len(factor) or \
            not all(isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in threads) or \
            not all(isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) and f > 0
                    for f in factor):
        raise UsageError(f"{where} needs equally long lists `threads` (ints >= 1) and `factor` (positive "
                         f"numbers), got {c!r}", hint)
    return dict(zip(threads, map(float, factor)))


def _table(t, where: str) -> Table:
    hint = "re-run `edgekd profiles calibrate` to rewrite it"
    if not isinstance(t, dict) or not all(isinstance(t.get(f), list) for f in ("dims", "ratio", "speedup")):
        raise UsageError(f"{where} needs lists `dims`, `ratio` and `speedup`", hint)
    n = len(t["dims"])
    if n == 0 or len(t["ratio"]) != n or len(t["speedup"]) != n:
        raise UsageError(f"{where}: `dims`, `ratio` and `speedup` must be non-empty and equally long, "
                         f"got {n}, {len(t['ratio'])} and {len(t['speedup'])}", hint)
    try:
        x = np.array([_features(d) for d in t["dims"]], float)
        ratio = np.array(t["ratio"], float)
        sp = np.array(t["speedup"], float)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: `dims` must be a list of equally long number lists and "
                         "`ratio` / `speedup` lists of numbers", hint) from None
    if x.ndim != 2 or not np.isfinite(x).all() or not (np.isfinite(ratio).all() and (ratio > 0).all()) \
            or not (np.isfinite(sp).all() and (sp > 0).all()):
        raise UsageError(f"{where}: every `dims` row must have the same length and every `ratio` / "
                         "`speedup` value must be a positive number", hint)
    return Table.from_rows(t["dims"], ratio, sp)


def fit_rows(samples: list[tuple[NodeCost, float, float]], prm: Params) -> dict[str, list[tuple[list, float, float]]]:
    """Group measured kernels (node, one-thread seconds, speed-up) into per-family rows."""
    rows: dict[str, list] = {}
    for n, t1, speedup in samples:
        k = key(n)
        if k is None or t1 <= 0 or not math.isfinite(t1):
            continue
        rows.setdefault(k, []).append((dims_of(n, prm), t1 / prior_s(n, prm), speedup))
    return rows


def tables_from_rows(rows: dict, top_threads: int, cores: int) -> Kernels:
    return Kernels({k: Table.from_rows(*zip(*r)) for k, r in rows.items()}, top_threads, cores)

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
fraction (Amdahl). Inside a model a node also pays for streaming its weights from where all the model's
weights live (the stream curve), and kernels are scaled by how much longer they took inside the suite's
whole graphs than alone (composition factors, per kind of graph and thread count).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from .graph import NodeCost
from .roofline import Params, is_int8, single_thread_s

FORMAT = 3  # the [kernels] layout; 2: conv dims end with the kernel variant (graph._variant); 3: stream curve,
#             composition per kind of graph (and, optional in 3, the whole-network correction `network`)
GRAPH_KINDS = ("fp32", "int8")  # composition factors differ for graphs with quantized kernels (Q/DQ edges)
K_NEAREST = 8
RIDGE = 0.1
NETWORK_CLASSES = ("conv", "dwconv", "gemm")
NETWORK_GROUPS = tuple(f"{c}.{t}" for c in (*NETWORK_CLASSES, "other") for t in ("cache", "spill"))
DEFAULT_L2_KB = 1024.0  # a profile without cpu.l2_kb
FADE = 4.0  # distance (in log2 units) over which neighbours' residuals fade


def network_group(n: NodeCost, l2_bytes: float) -> str:
    """A node's group for the whole-network correction: its op class (conv, dwconv, gemm; the rest together)
    and whether what it touches (weights and activations) fits in one core's L2 ("cache") or not ("spill")."""
    cls = n.op_class if n.op_class in NETWORK_CLASSES else "other"
    return f"{cls}.{'spill' if n.bytes > l2_bytes else 'cache'}"


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
    def from_rows(cls, dims, ratios, speedups) -> Table:
        """A table from raw rows (as calibration fits them and the profile stores them)."""
        return cls(np.array([_features(d) for d in dims], float), np.log(np.asarray(ratios, float)),
                   np.asarray(speedups, float))

    def lookup(self, dims, min_ns: float = math.inf) -> tuple[float, float]:
        """(measured / roofline time ratio, speed-up at the top thread count) for a node of these dims, never
        faster than the family's fastest kernel or `min_ns` (the per-node overhead), whichever is less."""
        f = _features(dims)
        if f.shape[0] != self.x.shape[1]:
            raise ValueError("feature width")
        d = np.sqrt(((self.x - f) ** 2).sum(axis=1))
        idx = np.argsort(d)[:K_NEAREST]
        w = 1.0 / (d[idx] + 0.5)
        local = (w * self.resid[idx]).sum() / w.sum() * float(np.exp(-d[idx].min() / FADE))  # fades with distance
        trend = self.coef[0] + f @ self.coef[1:]
        y = float(np.clip(trend + local, self.y.min(), self.y.max()))  # never beyond what was measured
        # the floor keeps a ratio times a tiny prior from pricing a kernel at nothing; capped at the per-node
        # overhead, since a family measured only on large kernels (two LayerNorms of 150-900 KB) says nothing
        # of a 4 KB one (which the family's fastest kernel had priced at 26 us)
        floor = min(self.fastest_ns, min_ns) / max(float(dims[-1]), 1e-3)
        return max(float(np.exp(y)), floor), float((w * self.speedup[idx]).sum() / w.sum())


@dataclass
class Kernels:
    """All tables of a calibrated profile, with the thread count its speed-ups were measured at; the
    composition factors (how much longer kernels take inside whole graphs than alone, per kind of graph, fp32
    or quantized, and thread count); and the stream curve: per thread count, seconds per weight byte a one-row
    GEMV takes at each footprint."""
    tables: dict[str, Table]
    top_threads: int
    cores: int
    composition: dict[str, dict[int, float]] = field(default_factory=dict)  # "fp32" / "int8" -> threads -> x
    stream: dict[int, tuple[list[float], list[float]]] = field(default_factory=dict)  # threads -> (bytes, s/B)
    network: dict[int, dict[str, float]] = field(default_factory=dict)  # threads -> network group -> x
    l2_bytes: float = DEFAULT_L2_KB * 1024.0  # the L2 one core sees: what splits a node's cache tiers

    def network_factor(self, n: NodeCost, threads: int) -> float:
        """The whole-network correction of a node's group (calibrate.fit_networks; 1.0 when none was fitted)."""
        if not self.network:
            return 1.0
        g = network_group(n, self.l2_bytes)
        return _across_threads({t: f.get(g, 1.0) for t, f in self.network.items()}, threads, self.cores)

    def node_seconds(self, n: NodeCost, threads: int, prm: Params, footprint: float = 0.0,
                     graph: str = "fp32") -> float | None:
        """A node's time at `threads` inside a graph (`graph`: "int8" when it holds quantized kernels, else
        "fp32") whose weights take `footprint` bytes, or None when no table holds its family (the roofline
        prices it)."""
        k = key(n)
        table = self.tables.get(k) if k else None
        if table is None:
            return None
        try:
            ratio, speedup = table.lookup(dims_of(n, prm), prm.node_s * 1e9)
        except ValueError:
            return None
        return ratio * prior_s(n, prm) * thread_factor(speedup, self.top_threads, threads, self.cores) * \
            self.in_graph(threads, graph) + self.spill_s(n.weight_bytes, footprint, threads)

    def spill_s(self, weights: float, footprint: float, threads: int) -> float:
        """What streaming a node's weights costs beyond what it cost when the node was timed alone: alone, a
        kernel finds its weights where a footprint of their own size lives (often L2); inside a graph, where
        the whole graph's weights live. (Three 4 MB fp32 layers run 2.2x slower than one, three times.)"""
        if weights <= 0 or footprint <= weights or not self.stream:
            return 0.0
        return weights * max(0.0, self.per_byte(footprint, threads) - self.per_byte(weights, threads))

    def per_byte(self, footprint: float, threads: int) -> float:
        """Seconds per weight byte streamed at this footprint: the stream curve, interpolated in log2 bytes
        (held at the ends) and across thread counts like the composition factors."""
        def at(t):
            xs, ys = self.stream[t]
            return float(np.interp(math.log2(max(footprint, 1.0)), np.log2(xs), ys))
        return _across_threads({t: at(t) for t in self.stream}, threads, self.cores)

    def in_graph(self, threads: int, graph: str = "fp32") -> float:
        """The composition factor of a kind of graph at `threads` (1.0 when none was measured)."""
        factors = self.composition.get(graph)
        return _across_threads(factors, threads, self.cores) if factors else 1.0


def _across_threads(values: dict[int, float], threads: int, cores: int) -> float:
    """A per-thread-count figure at `threads`: interpolated in 1 - 1/threads (the parallel share) between the
    thread counts it was measured at, held at the ends."""
    xs = sorted(values)
    return float(np.interp(1.0 - 1.0 / max(1, min(int(threads), cores)), [1.0 - 1.0 / t for t in xs],
                           [values[t] for t in xs]))


def thread_factor(speedup: float, top: int, threads: int, cores: int) -> float:
    """Amdahl's law through the measured point: at `top` threads the time is 1/speedup."""
    n = min(int(threads), cores)
    if n <= 1 or top <= 1:
        return 1.0
    serial = min(1.5, max(0.0, (top / max(speedup, 1e-3) - 1.0) / (top - 1.0)))
    return serial + (1.0 - serial) / n


def network_data(network: dict[int, dict[str, float]]) -> dict:
    """The [kernels.network] table: thread counts and, per network group, a factor per thread count."""
    threads = sorted(network)
    return {"threads": threads, **{g: [round(network[t].get(g, 1.0), 4) for t in threads] for g in NETWORK_GROUPS}}


def to_data(rows: dict[str, list[tuple[list[float], float, float]]], top_threads: int,
            composition: dict[str, dict[int, float]] | None = None, stream: dict | None = None) -> dict:
    """The profile's [kernels] table: per family, features, measured / roofline ratios and speed-ups; the
    composition factors and the stream curve (footprints in MB, ns per KB) per thread count."""
    out: dict = {"format": FORMAT, "top_threads": top_threads}
    if composition:
        threads = sorted(composition["fp32"])
        out["composition"] = {"threads": threads, **{g: [round(composition[g][t], 4) for t in threads]
                                                     for g in GRAPH_KINDS}}
    if stream:
        out["stream"] = {"threads": sorted(stream),
                         "mb": [[round(b / 2**20, 4) for b in stream[t][0]] for t in sorted(stream)],
                         "ns_per_kb": [[float(f"{c * 1e9 * 1024:.5g}") for c in stream[t][1]] for t in sorted(stream)]}
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
              if name not in ("format", "top_threads", "composition", "stream", "network")}
    l2 = data.get("cpu", {}).get("l2_kb", DEFAULT_L2_KB) if isinstance(data.get("cpu"), dict) else DEFAULT_L2_KB
    return Kernels(tables, top, cores, _composition(raw.get("composition", {}), f"{where}: `kernels.composition`"),
                   _stream(raw.get("stream", {}), f"{where}: `kernels.stream`"),
                   _network(raw.get("network", {}), f"{where}: `kernels.network`"), float(l2) * 1024.0)


def _network(c, where: str) -> dict[int, dict[str, float]]:
    """Parse the whole-network correction: `threads`, and per network group one positive factor per thread
    count (a group left out is 1.0)."""
    if c == {}:
        return {}
    threads = c.get("threads") if isinstance(c, dict) else None
    groups = {k: v for k, v in c.items() if k != "threads"} if isinstance(c, dict) else {}
    if not (isinstance(threads, list) and _thread_counts(threads) and threads and
            set(groups) <= set(NETWORK_GROUPS) and
            all(isinstance(v, list) and len(v) == len(threads) and all(map(_positive, v)) for v in groups.values())):
        raise UsageError(f"{where} needs `threads` (ints >= 1) and, for groups of {', '.join(NETWORK_GROUPS)}, "
                         f"one positive factor per thread count, got {c!r}"[:400],
                         "re-run `edgekd profiles calibrate` to rewrite it")
    return {t: {g: float(v[i]) for g, v in groups.items()} for i, t in enumerate(threads)}


def _stream(c, where: str) -> dict[int, tuple[list[float], list[float]]]:
    """Parse the stream curve: `threads`, and per thread count a row of footprints (MB, increasing) and of
    ns per KB (positive)."""
    if c == {}:
        return {}
    threads, mb, ns = (c.get("threads"), c.get("mb"), c.get("ns_per_kb")) if isinstance(c, dict) else (0, 0, 0)

    def row_ok(xs, ys):
        return isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys) >= 1 and \
            all(_positive(v) for v in xs + ys) and all(a < b for a, b in zip(xs, xs[1:]))
    if not (isinstance(threads, list) and isinstance(mb, list) and isinstance(ns, list) and
            len(threads) == len(mb) == len(ns) and _thread_counts(threads) and all(map(row_ok, mb, ns))):
        raise UsageError(f"{where} needs `threads` (ints >= 1) and, per thread count, equally long rows `mb` "
                         f"(increasing) and `ns_per_kb` of positive numbers, got {c!r}",
                         "re-run `edgekd profiles calibrate` to rewrite it")
    return {t: ([v * 2**20 for v in x], [v * 1e-9 / 1024 for v in y]) for t, x, y in zip(threads, mb, ns)}


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _thread_counts(values: list) -> bool:
    return all(isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in values)


def _composition(c, where: str) -> dict[str, dict[int, float]]:
    if c == {}:
        return {}
    lists = [c.get(k) for k in ("threads", *GRAPH_KINDS)] if isinstance(c, dict) else [None]
    if not all(isinstance(v, list) and len(v) == len(lists[0]) for v in lists) or \
            not _thread_counts(lists[0]) or \
            not all(map(_positive, sum(lists[1:], []))):
        raise UsageError(f"{where} needs equally long lists `threads` (ints >= 1), `fp32` and `int8` (positive "
                         f"factors), got {c!r}", "re-run `edgekd profiles calibrate` to rewrite it")
    return {g: dict(zip(lists[0], map(float, f))) for g, f in zip(GRAPH_KINDS, lists[1:])}


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

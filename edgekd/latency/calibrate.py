"""`edgekd profiles calibrate`: run the micro-benchmark suite with onnxruntime on this device, fit the
cost model's efficiencies, overheads and thread scaling to the measurements, and write a profile whose
fitted numbers are marked `measured: edgekd profiles calibrate, <date>`.

Every kernel onnxruntime runs for a micro-benchmark is timed alone (a one-node graph of the optimized
model), so each kernel-table row is a direct measurement rather than a guessed share of a graph's time;
whole chains and blocks are timed too, to check that kernels measured alone add up to a graph. Sessions
are timed with idle-thread spinning off: with many sessions alive, one session's spinning workers steal
the cores the next one needs (on a 2-core VM that made 2-thread timings up to 10x slower per burst).

Needs only onnxruntime, onnx and numpy, so it runs on a Pi or a phone dev board without torch.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import profiles
from ..errors import UsageError
from ..resources import cores
from . import kernels as kern
from .graph import GraphCost
from .micro import STREAM_SHAPES, Micro, nothing, sampled, sampled_blocks, stream, tiny_chain
from .networks import sampled_networks
from .predictor import graph_kind, per_node_seconds, total_seconds
from .roofline import COMPUTE_CLASSES, MEMORY_TERMS, Params, is_int8

TINY_CHAINS = (1, 17, 33, 65)  # chain lengths whose times' slope (least squares) is the per-node overhead
NETWORK_RIDGE = 0.05  # how strongly a network group's factor is held at 1 (relative-error units)
NETWORK_RANGE = (0.5, 3.0)  # a factor outside it would be the fit chasing noise, not caches
NETWORKS_PER_FAMILY = 4  # whole CNNs, inverted-residual nets, MLPs and encoders the kernels must add up to
SUITE_SCALE = 1  # 184 graphs, ~1,140 distinct kernels, fp32 + int8, 1 and N threads: ~90 s on 2 cores
FLOP_COLS = [f"{d}.{c}" for d in ("fp32", "int8") for c in COMPUTE_CLASSES]
COLUMNS = ["run", "node", "node.int8", *FLOP_COLS, *[f"bytes.{m}" for m in MEMORY_TERMS]]


@dataclass
class Point:
    """One measured graph: its cost analysis and its median latency at some thread count."""
    name: str
    dtype: str
    threads: int
    cost: GraphCost
    seconds: float
    graph: str = ""      # the micro-benchmark a kernel was isolated from (cross-validation folds by it)


class Bound:
    """One run of a session on fixed feeds with its inputs and outputs bound to preallocated buffers (IO
    binding). A kernel timed alone this way costs its own time plus onnxruntime's fixed per-run cost, not
    Python converting feeds and copying outputs to numpy, which a kernel inside a graph never pays (that
    copy alone cost isolated kernels 1-15 us each: their sum overshot small whole models by up to 40%)."""

    def __init__(self, sess, feeds: dict):
        import onnxruntime as ort

        self.sess, self.binding = sess, sess.io_binding()
        self.inputs = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
        self.outputs = sess.run(None, self.inputs)  # each run writes into these arrays
        self._values = []  # the bound OrtValues wrap the arrays above: keep both alive
        for name, arr in self.inputs.items():
            self._values.append(ort.OrtValue.ortvalue_from_numpy(arr))
            self.binding.bind_ortvalue_input(name, self._values[-1])
        for o, arr in zip(sess.get_outputs(), self.outputs):
            self._values.append(ort.OrtValue.ortvalue_from_numpy(arr))
            self.binding.bind_ortvalue_output(o.name, self._values[-1])

    def __call__(self) -> None:
        self.sess.run_with_iobinding(self.binding)


def _runner(job):
    """A job is a callable (e.g. Bound) or a (session, feeds) pair timed as users run it: sess.run."""
    if callable(job):
        return job
    sess, feeds = job
    return lambda: sess.run(None, feeds)


def _burst(run, budget_s: float, min_runs: int = 3, max_runs: int = 20) -> float:
    """Median latency of back-to-back runs for about `budget_s` or `max_runs` runs (after one warm-up)."""
    run()
    samples, deadline = [], time.perf_counter() + budget_s
    while (time.perf_counter() < deadline and len(samples) < max_runs) or len(samples) < min_runs:
        t0 = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - t0) * 1e-9)
    return float(np.median(samples))


def measure_interleaved(jobs: list, rounds: int = 8, budget_s: float = 0.005, progress=None) -> list[float]:
    """Steady-state latency of each job (see _runner) on a machine that others share.

    Every job is timed in a short burst in each of `rounds` rounds that interleave all the jobs, and its
    latency is its lowest burst median: contention only ever adds time and comes in episodes of seconds,
    so some round of every job misses it. (One long measurement per job would land whole jobs in an
    episode and fit the model to the neighbours' load.)"""
    runs = [_runner(j) for j in jobs]
    best = [float("inf")] * len(jobs)
    for r in range(rounds):
        for i, run in enumerate(runs):
            best[i] = min(best[i], _burst(run, budget_s))
            if progress:
                progress(r * len(jobs) + i + 1, rounds * len(jobs), f"round {r + 1}/{rounds}")
    return best


def features(cost: GraphCost) -> np.ndarray:
    """The linear features of the single-thread model: one row per graph, in COLUMNS order."""
    row = dict.fromkeys(COLUMNS, 0.0)
    row["run"] = 1.0
    for n in cost.nodes:
        row["node"] += 1.0
        row["node.int8"] += float(is_int8(n))
        if n.op_class in COMPUTE_CLASSES:
            row[f"{n.dtype}.{n.op_class}"] += n.flops
            row[f"bytes.{n.op_class}"] += n.bytes
        elif n.op_class != "free":
            row[f"bytes.{n.op_class}"] += n.bytes
    return np.array([row[c] for c in COLUMNS])


def nnls(a: np.ndarray, b: np.ndarray, iters: int = 50) -> np.ndarray:
    """Non-negative least squares by a small active-set loop (columns scaled to unit norm first)."""
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    an = a / scale
    active = np.ones(a.shape[1], bool)
    x = np.zeros(a.shape[1])
    for _ in range(iters):
        sol, *_ = np.linalg.lstsq(an[:, active], b, rcond=None)
        x[:] = 0
        x[active] = sol
        if (sol >= 0).all():
            break
        active[np.where(active)[0][sol < 0]] = False  # drop every column that went negative, refit
    return x / scale


def fit(points: list[Point], cores: int, run_s: float | None = None, node_s: float | None = None) -> Params:
    """Stage 1: least squares on relative error at one thread, with the run and per-node overheads fixed
    where they were measured. Stage 2: grid search of thread scaling."""
    one = [p for p in points if p.threads == 1]
    a = np.stack([features(p.cost) for p in one])
    t = np.array([p.seconds for p in one])
    fixed = {k: v for k, v in (("run", run_s), ("node", node_s)) if v is not None}
    free = [i for i, c in enumerate(COLUMNS) if c not in fixed]
    known = sum(a[:, COLUMNS.index(c)] * v for c, v in fixed.items()) if fixed else np.zeros(len(t))
    coef = {**fixed, **dict(zip([COLUMNS[i] for i in free], nnls(a[:, free] / t[:, None], 1.0 - known / t)))}
    typical = float(np.median([coef[k] for k in FLOP_COLS if coef[k] > 0] or [1e-11]))
    for c in FLOP_COLS:  # a class the fit found (nearly) free has no evidence: use the slowest fitted rate
        if coef[c] < 0.01 * typical:
            coef[c] = max(coef[k] for k in FLOP_COLS)
    prm = Params(sec_per_flop={d: {c: coef[f"{d}.{c}"] for c in COMPUTE_CLASSES} for d in ("fp32", "int8")},
                 sec_per_byte={m: max(coef[f"bytes.{m}"], 1e-13) for m in MEMORY_TERMS},
                 node_s=coef["node"], int8_node_s=coef["node.int8"], run_s=coef["run"], serial=0.0, grain_s=0.0,
                 cores=cores)
    multi = [p for p in points if p.threads > 1]
    if multi:
        best = None
        for serial in np.linspace(0.0, 0.95, 20):
            for grain_us in (0.0, 2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0):
                prm.serial, prm.grain_s = float(serial), grain_us * 1e-6
                err = [abs(np.log(predicted_s(p, prm) / p.seconds)) for p in multi]
                score = float(np.mean(err))
                if best is None or score < best[0]:
                    best = (score, prm.serial, prm.grain_s)
        _, prm.serial, prm.grain_s = best
    return prm


def predicted_s(p: Point, prm: Params, tables: kern.Kernels | None = None) -> float:
    return total_seconds(p.cost.nodes, prm, tables, p.threads)


def errors_of(points: list[Point], prm: Params, tables: kern.Kernels | None = None) -> np.ndarray:
    """Relative errors (predicted / measured - 1) of the fitted model on the given points."""
    return np.array([predicted_s(p, prm, tables) / p.seconds - 1.0 for p in points])


def fit_kernels(points: list[Point], prm: Params, graphs: list[Point] = (),
                stream: dict | None = None) -> tuple[kern.Kernels, dict]:
    """Kernel tables from the isolated kernels: each one's time less the run overhead, and its speed-up at
    the top thread count. (Measured alone, a kernel's time needs no split among a graph's nodes.) With the
    `stream` curve, what weights cost inside a graph whose footprint outgrows a cache; with whole `graphs`,
    the composition factors that turn kernels alone into kernels inside a graph."""
    top = max(p.threads for p in points)
    by_kernel: dict[str, dict[int, Point]] = {}
    for p in points:
        by_kernel.setdefault(p.name, {})[p.threads] = p
    samples = []
    for by_threads in by_kernel.values():
        one, many = by_threads.get(1), by_threads.get(top)
        if one is None or len(one.cost.nodes) != 1:
            continue
        t1 = _own(one.seconds, prm)
        tn = _own(many.seconds, prm) if many is not None and top > 1 else t1
        samples.append((one.cost.nodes[0], t1, t1 / tn))
    rows = kern.fit_rows(samples, prm)
    tables = kern.tables_from_rows(rows, top, prm.cores)
    tables.stream = dict(stream or {})
    tables.composition = composition(graphs, prm, tables)
    return tables, kern.to_data(rows, top, tables.composition, tables.stream)


def composition(graphs: list[Point], prm: Params, tables: kern.Kernels) -> dict[str, dict[int, float]]:
    """Per kind of graph (fp32, or holding quantized kernels) and thread count, the median ratio of whole
    graphs' time (beyond the run overhead) to their kernels' sum as measured alone. Inside a graph kernels
    find inputs in colder caches than when one kernel runs over and over, and with several threads (spinning
    off) each parallel kernel wakes the pool: on a 2-core VM fp32 graphs took x0.99-1.05 their kernels' sum
    at one thread and x1.17-1.18 at two; quantized ones, with Q/DQ between their kernels, x0.95-1.08 and
    x1.06-1.25."""
    ratios: dict[tuple[str, int], list[float]] = {}
    for p in graphs:
        r = (p.seconds - prm.run_s) / (predicted_s(p, prm, tables) - prm.run_s)
        if r > 0:  # a graph lost in the run overhead's noise says nothing
            ratios.setdefault((graph_kind(p.cost.nodes), p.threads), []).append(r)
    out: dict[str, dict[int, float]] = {g: {} for g in kern.GRAPH_KINDS}
    for (g, th), r in sorted(ratios.items()):
        out[g][th] = float(np.exp(np.median(np.log(r))))
    for g, other in zip(kern.GRAPH_KINDS, kern.GRAPH_KINDS[::-1]):  # a kind the suite lacked: the other's
        out[g] = {th: out[g].get(th, out[other].get(th, 1.0)) for th in sorted({*out[g], *out[other]})}
    return out if out["fp32"] else {}


def network_fit(nets: list[Point], prm: Params, tables: kern.Kernels) -> dict[int, dict[str, float]]:
    """Per thread count, one factor per network group (op class x whether a node's bytes fit in L2) that
    turns the kernel tables' sum into whole networks' measured time: least squares on relative error, pulled
    towards 1 (ridge) so a group the networks barely use keeps the kernels' own figure. What it corrects:
    the tables were measured kernel by kernel, each finding its inputs warm; inside a network activations
    arrive through colder caches and weights spill from L2/L3 (on a 2-vCPU EPYC whole models ran 15-20%
    slower than their kernels' sum)."""
    out: dict[int, dict[str, float]] = {}
    groups = kern.NETWORK_GROUPS
    for th in sorted({p.threads for p in nets}):
        rows, target = [], []
        for p in (p for p in nets if p.threads == th):
            share = dict.fromkeys(groups, 0.0)
            for n, t in per_node_seconds(p.cost.nodes, prm, tables, th):
                share[kern.network_group(n, tables.l2_bytes)] += t / p.seconds
            rows.append([share[g] for g in groups])
            target.append(1.0 - prm.run_s / p.seconds)
        if not rows:
            continue
        a = np.vstack([np.array(rows), NETWORK_RIDGE ** 0.5 * np.eye(len(groups))])
        b = np.concatenate([np.array(target), NETWORK_RIDGE ** 0.5 * np.ones(len(groups))])
        coef = np.linalg.lstsq(a, b, rcond=None)[0]
        out[th] = {g: float(np.clip(c, *NETWORK_RANGE)) for g, c in zip(groups, coef)}
    return out


def network_errors(nets: list[Point], prm: Params, tables: kern.Kernels) -> np.ndarray:
    """Signed relative errors (predicted / measured - 1) of every whole network, each predicted by the
    correction fitted without it (leave one network out: its fp32 and int8 forms, every thread count)."""
    import dataclasses

    err = np.zeros(len(nets))
    for name in sorted({p.graph for p in nets}):
        rest = [p for p in nets if p.graph != name]
        held = dataclasses.replace(tables, network=network_fit(rest, prm, tables))
        for i, p in enumerate(nets):
            if p.graph == name:
                err[i] = predicted_s(p, prm, held) / p.seconds - 1.0
    return err


def network_stats(err: np.ndarray, before: np.ndarray) -> dict:
    """The profile's `whole_model_*` figures: the leave-one-out errors, and the kernels' sum's without the fit."""
    if not err.size:
        return {}
    a = np.abs(err)
    return {"whole_models": int(err.size), "whole_model_median_error": round(float(np.median(a)), 4),
            "whole_model_within_10": round(float((a <= 0.10).mean()), 4),
            "whole_model_within_20": round(float((a <= 0.20).mean()), 4),
            "whole_model_bias": round(float(np.median(err)), 4),
            "whole_model_median_error_unfitted": round(float(np.median(np.abs(before))), 4)}


def repeatability(diffs: list[float]) -> dict:
    """How well two timings of the same graphs agreed: no prediction can be checked on this machine more
    closely than its own measurements repeat (on a shared 2-vCPU VM, two timings of the same 120 models agreed
    within 20% for 98% of them in a quiet hour and for 40% in a busy one)."""
    d = np.asarray(diffs, float)
    return {"repeat_within_20": round(float((d <= 0.20).mean()), 4),
            "repeat_median_abs_diff": round(float(np.median(d)), 4)} if d.size else {}


def _own(seconds: float, prm: Params) -> float:
    """A lone kernel's own time: its graph's time less the run overhead (never below 5% of it: for the
    tiniest kernels noise can make the difference vanish)."""
    return max(seconds - prm.run_s, 0.05 * seconds)


def cross_validated_errors(kernels: list[Point], graphs: list[Point], prm: Params,
                           stream: dict | None = None) -> np.ndarray:
    """|relative error| of whole graphs (chains and blocks) predicted by tables fitted without the kernels
    isolated from them (2-fold over graphs): the honest error that sets prediction bands and sizing
    margins. It also tests composition: a graph's time as the sum of its kernels measured alone."""
    names = sorted({p.graph for p in graphs})
    fold = {n: i % 2 for i, n in enumerate(names)}
    err = np.zeros(len(graphs))
    for f in (0, 1):
        tables, _ = fit_kernels([p for p in kernels if fold.get(p.graph, 1 - f) != f], prm,
                                [p for p in graphs if fold[p.graph] != f], stream)
        test = [i for i, p in enumerate(graphs) if fold[p.graph] == f]
        err[test] = np.abs(errors_of([graphs[i] for i in test], prm, tables))
    return err


def run_suite(threads_list: list[int], preset: str, quick: bool = False, progress=None,
              alongside: list = ()) -> tuple[list[Point], list[Point], list[float], dict]:
    """Build and quantize every micro-benchmark, isolate each kernel onnxruntime runs for it (each distinct
    kernel once), and time every kernel, every whole chain / block graph and the `alongside` (session,
    feeds) jobs at every thread count in the same interleaved rounds (how benchmarks compare predictions
    with measurements on a machine whose speed drifts), then the whole graphs once more. Returns (kernel
    points, graph points, alongside seconds, {"run_s": run overhead, "node_s": per-node overhead, "stream":
    {threads: (bytes, s per byte)}, "repeat": each graph's |second timing / first - 1|}).

    Kernels and whole graphs are timed alike, with IO binding; an empty graph, timed both ways, gives the
    fixed per-run cost of each. A point's seconds are its bound time less the bound run cost plus the run
    overhead of sess.run (how users run models), so the run overhead is measured and each kernel's own
    time (seconds - run overhead) excludes any per-run cost. (With graphs timed by sess.run, the 1-thread
    composition factor swung between x1.00 and x1.25 from one benchmark run to the next; timed bound,
    x0.98 and x1.00.) Chains of 1-65 tiny ops give the per-node overhead inside a graph, and one-row
    GEMVs over 0.25-32 MB of weights the cost per weight byte at each footprint (kernels.Kernels.spill_s).
    Whole networks (networks.sampled_networks) are timed as graphs but none of their kernels alone: they are
    what the kernels must add up to, returned as "networks" for the whole-network fit."""
    import onnx

    from ..deploy.runtime import session
    from .graph import isolate

    singles, blocks = (sampled(1)[::4], sampled_blocks(1)[::4]) if quick else \
        (sampled(SUITE_SCALE), sampled_blocks(SUITE_SCALE))
    nets = sampled_networks(1 if quick else NETWORKS_PER_FAMILY)
    kernel_specs: list[tuple[str, str, str, GraphCost, int]] = []  # (point name, graph, dtype, cost, threads)
    graph_specs: list[tuple[str, str, str, GraphCost, int]] = []
    net_specs: list[tuple[str, str, str, GraphCost, int]] = []
    kernel_jobs, graph_jobs, net_jobs, seen = [], [], [], set()
    with tempfile.TemporaryDirectory() as td:
        for m, kind in [(m, "kernel") for m in singles] + [(m, "block") for m in blocks] + \
                [(m, "network") for m in nets]:
            variants = [("fp32", Path(td) / f"{m.name}.onnx")]
            onnx.save(m.model, str(variants[0][1]))
            if m.quantizable:
                variants.append(("int8", Path(td) / f"{m.name}.int8.onnx"))
                _quantize(variants[0][1], variants[1][1], m, preset)
            for dtype, path in variants:
                cost, alone = isolate(path, "all")  # the graph sessions run on this device, kernel by kernel
                if kind != "kernel":  # whole graphs: do kernels measured alone add up to them?
                    specs, jobs = (graph_specs, graph_jobs) if kind == "block" else (net_specs, net_jobs)
                    for th in threads_list:
                        specs.append((f"{m.name}.{dtype}", m.name, dtype, cost, th))
                        jobs.append(Bound(session(path, th, spin=False), m.feeds))
                if kind == "network":  # whole networks are what the kernels must predict: none of theirs is timed
                    continue
                for i, (node, model, feeds) in enumerate(alone):
                    sig = (node.op_type, node.kernel, node.dtype, tuple(node.dims), tuple(node.shape))
                    if sig in seen:  # chains repeat their kernels; time each distinct one once
                        continue
                    seen.add(sig)
                    kpath = Path(td) / f"{m.name}.{dtype}.{i}.onnx"
                    onnx.save(model, str(kpath))
                    for th in threads_list:
                        kernel_specs.append((f"{m.name}.{dtype}#{i}", m.name, dtype,
                                             GraphCost([node], {}, [], "all"), th))
                        kernel_jobs.append(Bound(session(kpath, th, level="disable", spin=False), feeds))
        empty, overhead_jobs = nothing(), []
        onnx.save(empty.model, str(Path(td) / "empty.onnx"))
        for th in threads_list:
            sess = session(Path(td) / "empty.onnx", th, level="disable", spin=False)
            overhead_jobs += [(sess, empty.feeds), Bound(sess, empty.feeds)]
        for chain in map(tiny_chain, TINY_CHAINS):
            onnx.save(chain.model, str(Path(td) / f"{chain.name}.onnx"))
            overhead_jobs.append((session(Path(td) / f"{chain.name}.onnx", 1, spin=False), chain.feeds))
        stream_specs = [(k * n * 4.0, th) for k, n in STREAM_SHAPES for th in threads_list]
        for k, n in STREAM_SHAPES:
            m = stream(k, n)
            onnx.save(m.model, str(Path(td) / f"{m.name}.onnx"))
            overhead_jobs += [Bound(session(Path(td) / f"{m.name}.onnx", th, spin=False), m.feeds)
                              for th in threads_list]
        graph_jobs += net_jobs
        graph_specs += net_specs
        seconds = measure_interleaved(kernel_jobs + graph_jobs + overhead_jobs + list(alongside), progress=progress)
        again = measure_interleaved(  # the same graphs once more: how far this machine's timings move
            graph_jobs, progress=progress and (lambda done, total, what: progress(done, total, f"repeat, {what}")))
    n_k, n_g, n_o = len(kernel_specs), len(kernel_specs) + len(graph_specs), len(overhead_jobs)
    repeat = [abs(b / a - 1.0) for a, b in zip(seconds[n_k:n_g], again)]
    overhead = seconds[n_g:n_g + n_o]
    run_s = overhead[0]  # an empty graph run as users run it, one thread
    bound_s = {th: overhead[2 * i + 1] for i, th in enumerate(threads_list)}
    chains = overhead[2 * len(threads_list):2 * len(threads_list) + len(TINY_CHAINS)]
    node_s = max(0.0, float(np.polyfit(TINY_CHAINS, chains, 1)[0]))  # from two lengths it read 0.96-1.2 us here
    curve: dict[int, tuple[list[float], list[float]]] = {th: ([], []) for th in threads_list}
    for (nbytes, th), sec in zip(stream_specs, overhead[-len(stream_specs):]):
        curve[th][0].append(nbytes)
        curve[th][1].append(max(sec - bound_s[th], 1e-9) / nbytes)
    for _, per_byte in curve.values():  # a larger footprint never streams faster: the smallest GEMVs' fixed
        for i in range(len(per_byte) - 2, -1, -1):  # costs would otherwise read as slow streaming
            per_byte[i] = min(per_byte[i], per_byte[i + 1])
    seconds = [sec - bound_s[th] + run_s for (*_, th), sec in zip(kernel_specs + graph_specs, seconds[:n_g])] + \
        seconds[n_g:]
    points = [Point(name, dtype, th, cost, sec, graph)
              for (name, graph, dtype, cost, th), sec in zip(kernel_specs + graph_specs, seconds)]
    n_b = n_g - len(net_specs)
    return points[:n_k], points[n_k:n_b], seconds[n_g + n_o:], \
        {"run_s": run_s, "node_s": node_s, "stream": curve, "repeat": repeat, "networks": points[n_b:n_g]}


def _quantize(src: Path, dst: Path, m: Micro, preset: str) -> None:
    import logging

    from onnxruntime import quantization as q

    from ..deploy.quantize import PRESETS

    logging.getLogger().setLevel(logging.ERROR)
    p = PRESETS[preset]

    class Reader:
        def __init__(self):
            rng = np.random.default_rng(1)
            self.items = [{k: rng.random(v.shape, dtype=np.float32) for k, v in m.feeds.items()} for _ in range(4)]

        def get_next(self):
            return self.items.pop() if self.items else None

    q.quantize_static(str(src), str(dst), Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=p["per_channel"], reduce_range=p["reduce_range"],
                      activation_type=getattr(q.QuantType, p["activation"]),
                      weight_type=getattr(q.QuantType, p["weight"]))


def measure_preset(threads: int = 1) -> tuple[str | None, dict]:
    """Which int8 activation type runs faster on this device, on blocks shaped like edge models (an inverted
    residual, a dense conv chain, an MLP, an attention block), each quantized with uint8 and with int8
    activations and timed side by side. Returns ("u8s8" | "s8s8" when one is >5% faster in geometric mean,
    else None) and the figures: MLAS's kernels differ by CPU, so this is measured, not assumed."""
    import onnx

    from ..deploy.measure import interleaved_p50
    from .micro import attention, conv_chain, inverted_residual, mlp_chain

    ms: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as td:
        for m in (inverted_residual(32, 28, 6), conv_chain(32, 64, 28, 3, 3), mlp_chain(1, [256, 256, 256]),
                  attention(64, 128, 4)):
            src = Path(td) / f"{m.name}.onnx"
            onnx.save(m.model, str(src))
            paths = []
            for preset in ("u8s8", "s8s8"):
                dst = Path(td) / f"{m.name}.{preset}.onnx"
                _quantize(src, dst, m, preset)
                paths.append(dst)
            u8, s8 = interleaved_p50(paths, m.feeds, threads, rounds=5, runs=30, max_seconds=0.3)
            ms[m.name] = {"u8s8": round(u8, 4), "s8s8": round(s8, 4)}
    ratio = float(np.exp(np.mean([np.log(v["s8s8"] / v["u8s8"]) for v in ms.values()])))
    best = "s8s8" if ratio < 0.95 else ("u8s8" if ratio > 1.05 else None)
    return best, {"s8s8_over_u8s8": round(ratio, 4), "graphs": ms}


def _measured_preset(data: dict, sources: dict, threads: int) -> None:
    """The profile's int8 preset from measurement (reduce_range kept where this x86 CPU needs it; the CPU's
    default when neither activation type is clearly faster)."""
    from ..deploy.quantize import host_preset

    best, figures = measure_preset(threads)
    default = host_preset()
    if best is None:
        preset, how = default, "neither is >5% faster: the CPU's default"
    else:
        preset = "u8s8-reduce-range" if best == "u8s8" and default == "u8s8-reduce-range" else best
        how = f"{best} faster"
    data.setdefault("runtime", {})["int8_preset"] = preset
    sources["runtime.int8_preset"] = (f"measured: edgekd profiles calibrate, {_dt.date.today().isoformat()} "
                                      f"(4 blocks, s8s8 / u8s8 time {figures['s8s8_over_u8s8']:.2f}: {how})")
    data.setdefault("calibration", {})["int8_preset_ms"] = figures


# ------------------------------------------------------------------ host facts and the written profile

def host_facts() -> dict:
    """Static facts of this machine read from /proc (used when no --base profile is given)."""
    info = {"arch": "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64",
            "cores": cores(), "isa": [], "freq_ghz": 2.0, "ram_mb": 4096.0}
    try:
        from ..deploy.measure import cpu_flags

        text = Path("/proc/cpuinfo").read_text()
        flags = cpu_flags()
        mapping = {"asimd": "neon", "asimdhp": "fp16", "asimddp": "dotprod", "i8mm": "i8mm", "sve": "sve",
                   "avx2": "avx2", "fma": "fma", "avx512f": "avx512", "avx512_vnni": "avx512_vnni",
                   "avx_vnni": "avx_vnni", "amx_int8": "amx", "avx": "avx", "sse4_2": "sse4_2"}
        info["isa"] = sorted({v for k, v in mapping.items() if k in flags})
        mhz = [float(ln.split(":")[1]) for ln in text.splitlines() if ln.lower().startswith("cpu mhz")]
        if mhz:
            info["freq_ghz"] = round(max(mhz) / 1000, 2)
    except OSError:
        pass
    try:
        kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal"))
        info["ram_mb"] = round(kb / 1024, 0)
    except (OSError, StopIteration):
        pass
    info.update(cache_kb())
    return info


def cache_kb(root: str = "/sys/devices/system/cpu/cpu0/cache") -> dict[str, float]:
    """{"l2_kb", "l3_kb"} of the first core from sysfs (Linux; {} where it is not readable). The sizes are
    the caches' own: a shared L3 is the whole L3."""
    sizes: dict[str, float] = {}
    for index in sorted(Path(root).glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        scale = {"K": 1, "M": 1024, "G": 1024 * 1024}.get(text[-1:], None)
        if level in (2, 3) and kind in ("Unified", "Data") and scale and text[:-1].isdigit():
            sizes[f"l{level}_kb"] = float(int(text[:-1]) * scale)
    if "l2_kb" in sizes:
        sizes.setdefault("l3_kb", 0.0)
    return sizes


def measure_bandwidth_gbps(mb: int = 128, repeats: int = 5) -> float:
    """STREAM-like copy bandwidth (read + write) of a buffer far larger than the caches."""
    a = np.ones(mb * 1024 * 1024 // 4, np.float32)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return round(2 * a.nbytes / best / 1e9, 2)


def _peak_per_core(isa: list[str], ghz: float) -> tuple[float, float]:
    """Nominal fp32 / int8 peaks per core from the ISA (FLOP or OP per cycle x GHz)."""
    if "avx512" in isa:
        fp32 = 64
    elif "avx2" in isa:
        fp32 = 32
    else:
        fp32 = 16  # 2 x 128-bit NEON FMA pipes
    int8 = fp32 * (4 if {"avx512_vnni", "avx_vnni", "dotprod", "i8mm", "amx"} & set(isa) else 2)
    return fp32 * ghz, int8 * ghz


def build_profile(name: str, base: profiles.Profile | None, prm: Params, stats: dict, bandwidth: float,
                  threads_list: list[int]) -> dict:
    """A complete profile dict: static facts from the base (or this host), cost model from the fit."""
    today = _dt.date.today().isoformat()
    measured = f"measured: edgekd profiles calibrate, {today}"
    if base is not None:
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.data.items()}
        data["cpu"], data["memory"] = dict(base.data["cpu"]), dict(base.data["memory"])
        sources = dict(base.data.get("sources", {}))
        sources.pop("cost", None)
        data["base"] = base.name
    else:
        h = host_facts()
        fp32, int8 = _peak_per_core(h["isa"], h["freq_ghz"])
        from ..deploy.quantize import host_preset
        data = {"cpu": {"arch": h["arch"], "cores": h["cores"], "freq_ghz": h["freq_ghz"], "isa": h["isa"],
                        "fp32_gflops_per_core": round(fp32, 2), "int8_gops_per_core": round(int8, 2)},
                "memory": {"ram_mb": h["ram_mb"], "bandwidth_gbps": bandwidth},
                "runtime": {"execution_providers": ["CPUExecutionProvider"], "models_ep": "CPUExecutionProvider",
                            "int8_preset": host_preset()},
                "budgets": {"latency_ms": 10.0, "memory_mb": round(h["ram_mb"] / 4, 0)}}
        data["cpu"].update({k: h[k] for k in ("l2_kb", "l3_kb") if k in h})
        sources = {"cpu": "this host: /proc/cpuinfo (peaks derived from ISA width x frequency)",
                   **({"cpu.l2_kb": "this host: sysfs", "cpu.l3_kb": "this host: sysfs"} if "l2_kb" in h else {}),
                   "memory.ram_mb": "this host: /proc/meminfo", "memory.bandwidth_gbps": measured + " (numpy copy)",
                   "budgets": "default for a calibrated host; override with --budget-ms / --memory-mb"}
    data["name"] = name
    data["title"] = f"{name}: calibrated on {platform.node() or 'this machine'} ({platform.machine()})"
    data.pop("aliases", None)
    peak = {"fp32": data["cpu"]["fp32_gflops_per_core"] * 1e9, "int8": data["cpu"]["int8_gops_per_core"] * 1e9}
    eff = {d: {c: 1.0 / (prm.sec_per_flop[d][c] * peak[d]) for c in COMPUTE_CLASSES} for d in peak}
    for d, key in (("fp32", "fp32_gflops_per_core"), ("int8", "int8_gops_per_core")):
        top = max(eff[d].values())
        if top > 1.0:  # the nominal peak was too low for what the kernels achieved: raise it to the measured rate
            data["cpu"][key] = round(data["cpu"][key] * top, 3)
            eff[d] = {c: v / top for c, v in eff[d].items()}
            sources[f"cpu.{key}"] = measured + " (best kernel rate)"
    bw = data["memory"]["bandwidth_gbps"] * 1e9
    _measured_preset(data, sources, 1)
    data["cost"] = {
        "overhead_us": round(prm.node_s * 1e6, 4), "int8_overhead_us": round(prm.int8_node_s * 1e6, 4),
        "run_overhead_us": round(prm.run_s * 1e6, 4),
        "serial_fraction": round(prm.serial, 4), "parallel_grain_us": round(prm.grain_s * 1e6, 3),
        "bandwidth_efficiency": {m: round(min(20.0, 1.0 / (prm.sec_per_byte[m] * bw)), 5) for m in MEMORY_TERMS},
        "efficiency": {d: {c: round(max(1e-4, min(1.0, v)), 5) for c, v in eff[d].items()} for d in eff},
    }
    sources["cost"] = measured
    data["sources"] = sources
    data["calibration"] = {"date": today, "host": platform.node(), "threads": threads_list, **stats,
                           "int8_preset_ms": data.get("calibration", {}).get("int8_preset_ms", {})}
    return data


def check_output(out: str | os.PathLike) -> None:
    """The profile's file must go into a folder that exists (as `cp` refuses a missing one): a typo in -o must
    not create a tree, nor be found out after two minutes of measuring."""
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"-o {out} is a folder", f"name the file: -o {path / 'device.toml'}")
    if not path.parent.is_dir():
        raise UsageError(f"-o {out}: the folder {path.parent} does not exist", "create it first, or write elsewhere")


def calibrate(out: str | os.PathLike, name: str = "host", base: str | None = None,
              threads: list[int] | None = None, quick: bool = False, progress=None, alongside: list = ()) -> dict:
    """Measure, fit and write a calibrated profile to `out`; returns the fit's figures (and, in
    "alongside_seconds", the timings of the `alongside` jobs measured in the same rounds)."""
    import onnxruntime as ort

    from ..files import write_text
    from .tomlw import dumps

    check_output(out)
    from ..deploy.runtime import quiet_onnxruntime

    quiet_onnxruntime()
    base_prof = profiles.load(base) if base else None
    here = cores()
    n_cores = base_prof.cores if base_prof else here
    threads_list = sorted(set(threads or [1, min(n_cores, here)]))
    if threads_list[0] < 1 or threads_list[-1] > 4096:
        bad = threads_list[0] if threads_list[0] < 1 else threads_list[-1]
        raise UsageError(f"--threads must be in [1, 4096], got {bad}", "e.g. --threads 1 --threads 4")
    threads_list = sorted({min(t, here) for t in threads_list})  # more than the cores: the scheduler
    if 1 not in threads_list:
        threads_list = [1, *threads_list]
    from ..deploy.quantize import host_preset
    preset = base_prof.int8_preset if base_prof else host_preset()
    t0 = time.perf_counter()
    bandwidth = measure_bandwidth_gbps()
    kernel_points, graph_points, alongside_s, overheads = run_suite(threads_list, preset, quick, progress, alongside)
    prm = fit(kernel_points + graph_points, n_cores, overheads["run_s"], overheads["node_s"])
    data = build_profile(name, base_prof, prm, {}, bandwidth, threads_list)
    # the tables correct the roofline exactly as predictions will rebuild it from the written (rounded) profile
    prm = Params.from_profile(profiles.Profile(data, Path(out)))
    tables, data["kernels"] = fit_kernels(kernel_points, prm, graph_points, overheads["stream"])
    tables.l2_bytes = float(data["cpu"].get("l2_kb", kern.DEFAULT_L2_KB)) * 1024.0
    nets = overheads["networks"]
    whole = network_stats(network_errors(nets, prm, tables), errors_of(nets, prm, tables))
    tables.network = network_fit(nets, prm, tables)
    if tables.network:
        data["kernels"]["network"] = kern.network_data(tables.network)
    err = cross_validated_errors(kernel_points, graph_points, prm, overheads["stream"])
    stats = {"points": len(kernel_points) + len(graph_points), "kernels": len(kernel_points),
             "median_abs_error": round(float(np.median(err)), 4),
             "within_10": round(float((err <= 0.10).mean()), 4), "within_20": round(float((err <= 0.20).mean()), 4),
             "fit_median_abs_error": round(float(np.median(np.abs(errors_of(graph_points, prm, tables)))), 4),
             **whole, **repeatability(overheads["repeat"]),
             "onnxruntime": ort.__version__, "seconds": round(time.perf_counter() - t0, 1)}
    data["calibration"].update(stats)
    profiles.validate(data, str(out))
    write_text(out, dumps(data))
    return {"path": str(out), "name": name, **stats, "cost": data["cost"], "alongside_seconds": alongside_s}

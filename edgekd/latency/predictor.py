"""Predict latency on a device from its profile: a per-op-class roofline with efficiency factors, per-node
dispatch overhead, int8-vs-fp32 kernels and thread scaling.

Per fused node, at one thread:
    t1 = flops / (peak[dtype] * eff[dtype][class]) + bytes / (bandwidth * bw_eff[class])
(a smooth roofline: the sum of the compute and memory terms, so both regimes are priced and the
model stays linear in its parameters, which calibration fits by least squares). With n threads a
node uses n_eff = min(n, cores, max(1, t1 / grain)) threads (onnxruntime only splits work that is large
enough) and takes t1 * (serial + (1 - serial) / n_eff). Each node adds `overhead_us` (plus
`int8_overhead_us` when quantized), each run `run_overhead_us`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..profiles import COMPUTE_CLASSES, Profile
from .graph import GraphCost, NodeCost

MEMORY_TERMS = (*COMPUTE_CLASSES, "eltwise", "norm", "datamove")  # every class has a bytes term


@dataclass
class Params:
    """The cost-model parameters, in seconds per unit (what calibration fits)."""

    sec_per_flop: dict[str, dict[str, float]]      # dtype -> class -> s/FLOP
    sec_per_byte: dict[str, float]                  # memory term -> s/byte
    node_s: float
    int8_node_s: float     # extra dispatch cost of a quantized node (requantization set-up, Q/DQ)
    run_s: float
    serial: float
    grain_s: float
    cores: int

    @classmethod
    def from_profile(cls, p: Profile) -> "Params":
        peak = {"fp32": p.get("cpu.fp32_gflops_per_core") * 1e9, "int8": p.get("cpu.int8_gops_per_core") * 1e9}
        bw = p.get("memory.bandwidth_gbps") * 1e9
        return cls(
            sec_per_flop={d: {c: 1.0 / (peak[d] * p.get(f"cost.efficiency.{d}.{c}")) for c in COMPUTE_CLASSES}
                          for d in ("fp32", "int8")},
            sec_per_byte={m: 1.0 / (bw * p.get(f"cost.bandwidth_efficiency.{m}")) for m in MEMORY_TERMS},
            node_s=p.get("cost.overhead_us") * 1e-6, int8_node_s=p.get("cost.int8_overhead_us") * 1e-6,
            run_s=p.get("cost.run_overhead_us") * 1e-6,
            serial=p.get("cost.serial_fraction"), grain_s=p.get("cost.parallel_grain_us") * 1e-6,
            cores=int(p.get("cpu.cores")))


def single_thread_s(n: NodeCost, prm: Params) -> float:
    """A node's compute + memory time on one thread, without dispatch overhead."""
    if n.op_class == "free":
        return 0.0
    if n.op_class in COMPUTE_CLASSES:
        return n.flops * prm.sec_per_flop[n.dtype][n.op_class] + n.bytes * prm.sec_per_byte[n.op_class]
    return n.bytes * prm.sec_per_byte[n.op_class]


def thread_factor(t1: float, threads: int, prm: Params) -> float:
    """Amdahl with a work-size cut-off: small nodes stay on one thread."""
    n = min(int(threads), prm.cores)
    if n <= 1:
        return 1.0
    n_eff = min(float(n), max(1.0, t1 / prm.grain_s)) if prm.grain_s > 0 else float(n)
    return prm.serial + (1.0 - prm.serial) / n_eff


def is_int8(n: NodeCost) -> bool:
    return n.dtype == "int8" or n.op_type in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")


def node_seconds(n: NodeCost, prm: Params, threads: int) -> float:
    t1 = single_thread_s(n, prm)
    return t1 * thread_factor(t1, threads, prm) + prm.node_s + (prm.int8_node_s if is_int8(n) else 0.0)


@dataclass
class Prediction:
    profile: str
    threads: int
    batch: int
    latency_ms: float
    low_ms: float
    high_ms: float
    flops: float
    bytes: float
    nodes: int
    by_class_ms: dict[str, float]
    top_nodes: list[dict]
    unknown_ops: list[str]
    calibrated: bool
    input_shapes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def uncertainty(profile: Profile) -> float:
    """Relative error band: from the calibration's measured error, else +-50% for a datasheet prior."""
    cal = profile.data.get("calibration") or {}
    if "median_abs_error" in cal:
        return max(0.1, 2.0 * float(cal["median_abs_error"]))
    return 0.5


def total_seconds(nodes, prm: Params, tables, threads: int) -> float:
    """Predicted run time: the run overhead plus every node (kernel tables first, roofline for the rest)."""
    return sum(t for _, t in per_node_seconds(nodes, prm, tables, threads)) + prm.run_s


def node_time(n: NodeCost, prm: Params, tables, threads: int, footprint: float = 0.0, graph: str = "fp32") -> float:
    """A node's time from the profile's kernel tables when they hold its family, else from the roofline;
    `footprint` is the bytes of all the graph's weights (where they live sets what streaming them costs),
    `graph` its kind (graph_kind)."""
    t = tables.node_seconds(n, threads, prm, footprint, graph) if tables is not None else None
    return t if t is not None else node_seconds(n, prm, threads)


def graph_kind(nodes) -> str:
    """"int8" for a graph that runs quantized kernels, else "fp32" (their kernels compose differently)."""
    return "int8" if any(is_int8(n) for n in nodes) else "fp32"


def per_node_seconds(nodes, prm: Params, tables, threads: int) -> list[tuple[NodeCost, float]]:
    footprint, graph = sum(n.weight_bytes for n in nodes), graph_kind(nodes)
    return [(n, node_time(n, prm, tables, threads, footprint, graph)) for n in nodes]


def predict_cost(cost: GraphCost, profile: Profile, threads: int = 1, batch: int = 1, top: int = 10,
                 params: Params | None = None) -> Prediction:
    from .kernels import from_profile

    prm = params or Params.from_profile(profile)
    tables = from_profile(profile.data, str(profile.path), prm.cores)
    per_node = per_node_seconds(cost.nodes, prm, tables, threads)
    total = sum(t for _, t in per_node) + prm.run_s
    by_class: dict[str, float] = {}
    for n, t in per_node:
        by_class[n.op_class] = by_class.get(n.op_class, 0.0) + t * 1e3
    ranked = sorted(per_node, key=lambda nt: -nt[1])[:top]
    band = uncertainty(profile)
    return Prediction(
        profile=profile.name, threads=threads, batch=batch, latency_ms=total * 1e3,
        low_ms=total * 1e3 / (1 + band), high_ms=total * 1e3 * (1 + band),
        flops=cost.flops, bytes=cost.bytes, nodes=len(cost.nodes), by_class_ms=by_class,
        top_nodes=[{"name": n.name, "op_type": n.op_type, "class": n.op_class, "dtype": n.dtype,
                    "ms": t * 1e3, "share": t / total if total else 0.0, "mflops": n.flops / 1e6,
                    "kbytes": n.bytes / 1e3, "shape": n.shape} for n, t in ranked],
        unknown_ops=cost.unknown_ops, calibrated="median_abs_error" in (profile.data.get("calibration") or {}),
        input_shapes=cost.input_shapes)


def predict_latency(model_path: str, profile: str | Profile, threads: int = 1, batch: int = 1,
                    shapes: dict[str, list[int]] | None = None, top: int = 10) -> Prediction:
    """Predict the latency of an .onnx model on a device profile (name, alias, .toml path or Profile)."""
    from .. import profiles
    from ..errors import UsageError
    from .graph import analyze

    if threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}", "e.g. --threads 1")
    prof = profiles.load(profile) if isinstance(profile, str) else profile
    return predict_cost(analyze(model_path, batch, shapes, graph_level(prof)), prof, threads, batch, top)


def graph_level(profile: Profile) -> str:
    """The optimization level whose graph to price: ALL (what sessions run, with layout transforms that
    depend on the CPU) when the target has this machine's architecture, else the portable EXTENDED graph."""
    import platform

    here = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
    return "all" if profile.get("cpu.arch") == here else "extended"

"""Predict latency on a device from its profile: the roofline core (roofline.py) per node, corrected by the
profile's measured kernel tables where it has them, summed over the kernels onnxruntime runs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..profiles import Profile
from .graph import GraphCost, NodeCost
from .kernels import from_profile
from .roofline import Params, is_int8, node_seconds


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
    if profile.calibrated:
        return max(0.1, 2.0 * profile.median_error)
    return 0.5


def total_seconds(nodes, prm: Params, tables, threads: int) -> float:
    """Predicted run time: the run overhead plus every node (kernel tables first, roofline for the rest)."""
    return sum(t for _, t in per_node_seconds(nodes, prm, tables, threads)) + prm.run_s


def node_time(n: NodeCost, prm: Params, tables, threads: int, footprint: float = 0.0, graph: str = "fp32") -> float:
    """A node's time from the profile's kernel tables when they hold its family, else from the roofline;
    `footprint` is the bytes of all the graph's weights (where they live sets what streaming them costs),
    `graph` its kind (graph_kind)."""
    if tables is None:
        return node_seconds(n, prm, threads)
    t = tables.node_seconds(n, threads, prm, footprint, graph)
    return (t if t is not None else node_seconds(n, prm, threads)) * tables.network_factor(n, threads)


def graph_kind(nodes) -> str:
    """"int8" for a graph that runs quantized kernels, else "fp32" (their kernels compose differently)."""
    return "int8" if any(is_int8(n) for n in nodes) else "fp32"


def per_node_seconds(nodes, prm: Params, tables, threads: int) -> list[tuple[NodeCost, float]]:
    footprint, graph = sum(n.weight_bytes for n in nodes), graph_kind(nodes)
    return [(n, node_time(n, prm, tables, threads, footprint, graph)) for n in nodes]


def predict_cost(cost: GraphCost, profile: Profile, threads: int = 1, batch: int = 1, top: int = 10,
                 params: Params | None = None) -> Prediction:
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
        unknown_ops=cost.unknown_ops, calibrated=profile.calibrated,
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
    return "all" if profile.arch == here else "extended"


def predict_int8(model_path: str, profile: str | Profile, threads: int = 1, batch: int = 1,
                 shapes: dict[str, list[int]] | None = None, top: int = 10) -> dict:
    """The int8 speed-up a device would see, before quantizing: a temporary int8 copy is made the way
    `edgekd quantize` would for that device (its mode for this graph, the profile's preset; calibrated on
    generated inputs, since ranges do not change which kernels run) and both are predicted on the profile.
    The range is the profile's error band: a calibrated profile's whole-model error, else +-50%."""
    import tempfile
    from pathlib import Path

    from .. import profiles
    from ..deploy.measure import Speedup
    from ..deploy.quantize import already_quantized, attempts, calibration_feeds, mode_for, quantize_file
    from ..errors import UsageError
    from ..models.io import ModelIO, bind

    prof = profiles.load(profile) if isinstance(profile, str) else profile
    src = Path(model_path)
    if already_quantized(src):
        raise UsageError(f"{src} is already quantized: --int8 predicts what quantizing an fp32 model would give",
                         "pass the fp32 model, or drop --int8")
    fp32 = predict_latency(str(src), prof, threads, batch, shapes, top)
    mode, why = mode_for(src)
    io = ModelIO.from_onnx(str(src))
    feeds = bind(io, {}, shapes={**fp32.input_shapes, **(shapes or {})}, generate=16)
    with tempfile.TemporaryDirectory() as td:
        dst = Path(td) / "int8.onnx"
        quantize_file(src, dst, attempts(prof.int8_preset)[0], mode, calibration_feeds(io, feeds, 8))
        int8 = predict_latency(str(dst), prof, threads, batch, shapes, top)
    sp = Speedup.predicted(fp32.latency_ms, int8.latency_ms)
    band = uncertainty(prof)
    low, high = sp.ratio / (1 + band), sp.ratio * (1 + band)
    return {"profile": prof.name, "mode": mode, "why": why, "preset": prof.int8_preset, "fp32": fp32.to_dict(),
            "int8": int8.to_dict(), "speedup": sp.ratio, "low": low, "high": high, "call": sp.call,
            "verdict": f"int8 on {prof.name}, predicted: {sp.than('fp32')} ({mode}: {why}, preset "
                       f"{prof.int8_preset}; {int8.latency_ms:.3g} vs {fp32.latency_ms:.3g} ms; speed-up likely "
                       f"{low:.2f}x-{high:.2f}x)"}

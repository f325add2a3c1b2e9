"""Why int8 wins or loses on this machine: onnxruntime's own profiler on the fp32 and the int8 model, run in
turn, summed by op group — the kernels int8 made faster, the Quantize/Dequantize it added, the nodes that ran
in fp32 anyway, and the execution provider each node ran on."""
from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..latency.graph import CONV_OPS, FREE_OPS, GEMM_OPS, INT8_OPS, MOVE_OPS, NORM_OPS

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
ATTENTION_OPS = {"Attention", "MultiHeadAttention", "QAttention", "GroupQueryAttention"}
INT8_TYPES = {"int8", "uint8"}
Q_TWINS = {"QEmbedLayerNormalization", "QAttention", "QGemm", "QOrderedLayerNormalization"}  # int8 twin of op[1:]
COMPUTE_GROUPS = ("conv", "depthwise conv", "matmul", "attention")
GROUPS = (*COMPUTE_GROUPS, "quantize/dequantize", "pool", "elementwise", "norm/softmax", "layout", "other")
WORDS = {"conv": "convs", "depthwise conv": "depthwise convs", "matmul": "MatMuls/Gemms", "attention": "attention"}


@dataclass
class Group:
    name: str
    fp32_ms: float = 0.0
    int8_ms: float = 0.0
    fp32_nodes: int = 0
    int8_nodes: int = 0
    int8_kernels: int = 0    # nodes of the int8 model in this group that ran an int8 kernel


@dataclass
class Explanation:
    groups: list[Group]
    fp32_ms: float            # per run: the sum of the nodes' kernel times (median over the profiled runs)
    int8_ms: float
    runs: int
    threads: int
    reason: str
    costliest: list[dict] = field(default_factory=list)   # the int8 model's costliest nodes
    fp32_anyway: list[str] = field(default_factory=list)  # compute nodes of the int8 model that ran in fp32
    providers: dict[str, int] = field(default_factory=dict)
    where: str = "on this machine"
    wall_ms: dict[str, float] = field(default_factory=dict)  # p50 per run without the profiler, fp32 and int8
    caveat: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def group_of(op: str, depthwise: bool = False) -> str:
    """The op group a profiled node belongs to, the same for its fp32 and int8 kernels (Conv and QLinearConv)."""
    if op in QDQ_OPS:
        return "quantize/dequantize"
    if op in Q_TWINS:
        return group_of(op[1:])
    if op in ATTENTION_OPS:
        return "attention"
    if op in CONV_OPS:
        return "depthwise conv" if depthwise else "conv"
    if op in GEMM_OPS:
        return "matmul"
    if "Pool" in op:
        return "pool"
    if op in NORM_OPS:
        return "norm/softmax"
    if op in MOVE_OPS or op in FREE_OPS:
        return "layout"
    return "elementwise" if op.startswith(("QLinear", "Bias", "Fused")) or op in _ELTWISE else "other"


_ELTWISE = {"Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid", "Tanh", "Erf", "Gelu", "FastGelu", "QuickGelu",
            "LeakyRelu", "HardSigmoid", "HardSwish", "Exp", "Sqrt", "Pow", "Where", "Cast", "Softplus", "PRelu"}


@dataclass
class _Node:
    name: str
    op: str
    group: str
    provider: str
    int8: bool          # an int8 kernel: an int8 op, or int8 tensors in and out (a MaxPool on uint8)
    ms: float


def grouped_convs(*paths: Path) -> set[str]:
    """Names of the grouped (depthwise) convs of the models: the profiler shows no weight of a QLinearConv (it is
    prepacked), and the fused node keeps its source's name (`/2/Conv` runs as `/2/Conv_token_7`)."""
    import onnx

    names = set()
    for p in paths:
        for n in onnx.load(str(p), load_external_data=False).graph.node:
            if n.op_type in ("Conv", "ConvInteger", "QLinearConv") and \
                    any(a.name == "group" and a.i > 1 for a in n.attribute):
                names.add(n.name)
    return names


def _source_name(node: str) -> str:
    return re.sub(r"(_token_\d+)+$", "", node)


def _typical(durs: list[float]) -> float:
    """The mean below the 90th percentile: the profiler counts whole microseconds (a median of small kernels
    is all 0s and 1s), and the slowest tenth is the machine, not the kernel."""
    x = np.sort(np.asarray(durs))
    return float(x[:max(1, int(len(x) * 0.9))].mean())


def _nodes(events: list[dict], warmup: int, grouped: set[str]) -> tuple[list[_Node], int]:
    """Per node, its typical kernel time over the runs after `warmup` (a node appears once per run)."""
    seen: dict[str, list[float]] = {}
    meta: dict[str, dict] = {}
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        node = name[:-len("_kernel_time")]
        seen.setdefault(node, []).append(float(e.get("dur", 0)) / 1000.0)
        meta.setdefault(node, e.get("args") or {})
    out, runs = [], 0
    for node, durs in seen.items():
        a = meta[node]
        kept = durs[warmup:] or durs
        runs = max(runs, len(kept))
        ins = [next(iter(x.items())) for x in a.get("input_type_shape") or [] if x]
        outs = [next(iter(x.items())) for x in a.get("output_type_shape") or [] if x]
        op = str(a.get("op_name", "?"))
        int8_io = bool(ins) and bool(outs) and ins[0][0] in INT8_TYPES and all(t in INT8_TYPES for t, _ in outs)
        int8 = op in INT8_OPS or op in Q_TWINS or (op not in QDQ_OPS and int8_io)
        w = ins[1][1] if op in CONV_OPS and not op.startswith(("QLinear", "NhwcQLinear")) and len(ins) > 1 else []
        depthwise = _source_name(node) in grouped or (len(w) == 4 and w[1] == 1 and w[0] > 1)
        out.append(_Node(node, op, group_of(op, depthwise), str(a.get("provider", "?")), int8, _typical(kept)))
    return out, runs


def profile_pair(fp32: Path, int8: Path, feed: dict[str, np.ndarray], threads: int = 1, seconds: float = 2.0,
                 warmup: int = 5, rounds: int = 5) -> tuple[list[_Node], list[_Node], int]:
    """Both models profiled in alternating rounds (a busy machine slows both alike), ~`seconds` each."""
    from .runtime import session

    with tempfile.TemporaryDirectory(prefix="edgekd-explain-") as td:
        sess = [session(p, threads, profile_prefix=str(Path(td) / f"m{i}")) for i, p in enumerate((fp32, int8))]
        cost = []
        for s in sess:  # one untimed run each to learn how many runs fit in `seconds`
            t0 = time.perf_counter()
            s.run(None, feed)
            cost.append(time.perf_counter() - t0)
        per_round = [max(1, int(seconds / rounds / max(c, 1e-5))) for c in cost]
        for _ in range(warmup - 1):
            for s in sess:
                s.run(None, feed)
        for _ in range(rounds):
            for s, n in zip(sess, per_round):
                for _ in range(min(n, 400)):
                    s.run(None, feed)
        events = [json.loads(Path(s.end_profiling()).read_text()) for s in sess]
    grouped = grouped_convs(fp32, int8)
    (a, runs_a), (b, runs_b) = _nodes(events[0], warmup, grouped), _nodes(events[1], warmup, grouped)
    return a, b, min(runs_a, runs_b)


def explain(fp32: Path, int8: Path, feed: dict[str, np.ndarray], threads: int = 1, seconds: float = 2.0,
            top: int = 5) -> Explanation:
    """fp32 against int8, op group by op group, with the one-line reason int8 wins or loses here."""
    a, b, runs = profile_pair(Path(fp32), Path(int8), feed, threads, seconds)
    groups = {g: Group(g) for g in GROUPS}
    for n in a:
        groups[n.group].fp32_ms += n.ms
        groups[n.group].fp32_nodes += 1
    for n in b:
        g = groups[n.group]
        g.int8_ms += n.ms
        g.int8_nodes += 1
        g.int8_kernels += n.int8
    used = [g for g in groups.values() if g.fp32_nodes or g.int8_nodes]
    fp32_ms, int8_ms = sum(n.ms for n in a), sum(n.ms for n in b)
    anyway = [n.name for n in b if n.group in COMPUTE_GROUPS and not n.int8]
    providers: dict[str, int] = {}
    for n in b:
        providers[n.provider] = providers.get(n.provider, 0) + 1
    costly = sorted(b, key=lambda n: -n.ms)[:top]
    from .measure import interleaved_p50

    wall = dict(zip(("fp32", "int8"), interleaved_p50([fp32, int8], feed, threads, rounds=3, runs=30)))
    return Explanation(used, fp32_ms, int8_ms, runs, threads, reason(used, fp32_ms, int8_ms, len(anyway)),
                       [{"node": n.name, "op": n.op, "group": n.group, "ms": n.ms, "int8": n.int8,
                         "share": n.ms / int8_ms if int8_ms else 0.0} for n in costly], anyway, providers,
                       wall_ms=wall, caveat=_caveat(fp32_ms + int8_ms, sum(wall.values()), len(a) + len(b)))


def _caveat(profiled: float, wall: float, nodes: int) -> str | None:
    """The profiler times every node with a clock read around it: on a model whose nodes take microseconds that
    cost is a large part of each node's time, and the groups' split is rougher than it looks."""
    if profiled <= 1.5 * wall:
        return None
    per_node_us = 1000 * (profiled - wall) / max(nodes, 1)
    return (f"profiled, the two models took {profiled:.3g} ms against {wall:.3g} ms unprofiled: the profiler adds "
            f"about {per_node_us:.1f} us to each node here, so on a model this small the split by group is rough")


def reason(groups: list[Group], fp32_ms: float, int8_ms: float, fp32_anyway: int = 0) -> str:
    """The one line: what int8's kernels save against what its Quantize/Dequantize (and the rest) cost."""
    qdq_g = next((g for g in groups if g.name == "quantize/dequantize"), Group(""))
    qdq, n_qdq = qdq_g.int8_ms - qdq_g.fp32_ms, qdq_g.int8_nodes
    quantized = [g for g in groups if g.name in COMPUTE_GROUPS and g.int8_kernels]
    faster = [g for g in quantized if g.int8_ms < g.fp32_ms]
    slower = [g for g in quantized if g.int8_ms >= g.fp32_ms]
    saved = sum(g.fp32_ms - g.int8_ms for g in faster)
    lost = sum(g.int8_ms - g.fp32_ms for g in slower)
    rest = (int8_ms - fp32_ms) + saved - lost - qdq  # all else int8 changed: layout transposes, fp32 nodes
    verb = "wins" if int8_ms < fp32_ms else "loses"
    parts = []
    if faster:
        parts.append(f"the int8 {_names(faster)} save {saved:.2g} of their {sum(g.fp32_ms for g in faster):.2g} ms")
    if slower:
        parts.append(f"the int8 {_names(slower)} are slower than in fp32 by {lost:.2g} ms")
    if not quantized:
        parts.append("no conv or MatMul runs an int8 kernel")
    parts.append(f"Quantize/Dequantize ({n_qdq} nodes) costs {qdq:.2g} ms")
    if abs(rest) > 0.2 * abs(fp32_ms - int8_ms) and abs(rest) > 0.01 * fp32_ms:
        parts.append(f"the other nodes (layout, elementwise) {'cost' if rest > 0 else 'save'} {abs(rest):.2g} ms"
                     + (" more" if rest > 0 else ""))
    if fp32_anyway:
        parts.append(f"{fp32_anyway} compute node(s) ran in fp32 anyway")
    return f"int8 {verb} here ({int8_ms:.3g} vs {fp32_ms:.3g} ms of kernel time): " + "; ".join(parts)


def _names(groups: list[Group]) -> str:
    words = [WORDS[g.name] for g in groups]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]

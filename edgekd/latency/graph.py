"""ONNX graph cost analysis: fix the input shapes, run the model once in onnxruntime with profiling on, and
count FLOPs and bytes moved for every kernel that ran (after fusion and layout transforms), each with an op
class.

Needs only onnx, onnxruntime and numpy (no torch), so it runs on a device too.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..deploy.runtime import log_severity, quiet_onnxruntime
from ..errors import UsageError

# op class of each op type (after ORT fusion); compute classes are FLOP-bound, the rest bandwidth-bound
CONV_OPS = {"Conv", "FusedConv", "QLinearConv", "NhwcQLinearConv", "NhwcFusedConv", "ConvInteger", "NhwcConv",
            "ConvTranspose"}
GEMM_OPS = {"Gemm", "FusedGemm", "MatMul", "FusedMatMul", "QLinearMatMul", "MatMulInteger", "QGemm",
            "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulNBits", "Attention", "MultiHeadAttention",
            "QAttention", "Einsum"}
ELTWISE_OPS = {"Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid", "Tanh", "Erf", "Gelu", "FastGelu",
               "BiasGelu", "QuickGelu", "LeakyRelu", "HardSigmoid", "HardSwish", "Exp", "Log", "Sqrt", "Pow",
               "Neg", "Abs", "Max", "Min", "Where", "Equal", "Cast", "QLinearAdd", "QLinearMul",
               "QLinearSigmoid", "QLinearLeakyRelu", "QuantizeLinear", "DequantizeLinear",
               "DynamicQuantizeLinear", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
               "QLinearGlobalAveragePool", "QLinearAveragePool", "NhwcMaxPool", "BiasAdd", "Dropout", "Identity", "Not",
               "And", "Or", "Floor", "Ceil", "Round", "Reciprocal", "Softplus", "Mish", "PRelu"}
NORM_OPS = {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
            "SkipSimplifiedLayerNormalization", "BatchNormalization", "InstanceNormalization",
            "GroupNormalization", "Softmax", "LogSoftmax", "QLinearSoftmax", "ReduceMean", "ReduceSum",
            "ReduceMax", "ReduceL2", "EmbedLayerNormalization", "BiasSoftmax"}
MOVE_OPS = {"Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "Pad", "Expand", "Tile",
            "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "QLinearConcat", "ScatterND", "Range",
            "Trilu", "GatherND", "TopK", "ArgMax", "CumSum", "OneHot", "ReorderInput", "ReorderOutput"}
FREE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Constant", "ConstantOfShape", "Size"}
INT8_OPS = {"QLinearConv", "NhwcQLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QGemm",
            "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention", "QLinearAdd", "QLinearMul",
            "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearSoftmax", "QLinearConcat", "QLinearSigmoid",
            "QLinearLeakyRelu"}
MEMORY_CLASSES = ("eltwise", "norm", "datamove")
DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


@dataclass
class NodeCost:
    name: str
    op_type: str
    op_class: str          # conv, dwconv, gemm, eltwise, norm, datamove, free, other
    dtype: str             # fp32 or int8 (the kernel that runs)
    flops: float
    bytes: float
    shape: list = field(default_factory=list)  # first output's shape
    kernel: str = ""       # kernel family for the calibrated kernel tables (see kernels.py)
    dims: list = field(default_factory=list)   # the family's shape features
    weight_bytes: float = 0.0  # of its initializers: what it streams from wherever the graph's weights live

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GraphCost:
    nodes: list[NodeCost]
    input_shapes: dict[str, list[int]]
    unknown_ops: list[str]       # op types with no class: costed as generic bandwidth-bound nodes
    level: str                   # the onnxruntime optimization level the graph was read at

    @property
    def flops(self) -> float:
        return float(sum(n.flops for n in self.nodes))

    @property
    def bytes(self) -> float:
        return float(sum(n.bytes for n in self.nodes))


def parse_shapes(specs: list[str] | tuple[str, ...] | None) -> dict[str, list[int]]:
    """`--shape input=1x3x224x224` (repeatable) -> {"input": [1, 3, 224, 224]}."""
    out: dict[str, list[int]] = {}
    for s in specs or ():
        name, eq, dims = s.partition("=")
        try:
            shape = [int(d) for d in dims.lower().split("x")]
            if not eq or not name or any(d < 1 for d in shape):
                raise ValueError
        except ValueError:
            raise UsageError(f"--shape {s!r} is not NAME=D1xD2x...", "e.g. --shape input=1x3x224x224") from None
        out[name] = shape
    return out


def _fixed_inputs(model, batch: int, shapes: dict[str, list[int]]) -> dict[str, list[int]]:
    """Concrete shape of every graph input: --shape wins; else the batch dim takes `batch`."""
    inits = {i.name for i in model.graph.initializer}
    fixed: dict[str, list[int]] = {}
    names = [i.name for i in model.graph.input if i.name not in inits]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise UsageError(f"--shape names input {unknown[0]!r}, which the model does not have "
                         f"(inputs: {', '.join(names)})", "use one of the model's input names")
    known: dict[str, int] = {}  # a symbolic dim fixed by one input's --shape fixes it in every input
    for inp in model.graph.input:
        if inp.name in shapes:
            for d, size in zip(inp.type.tensor_type.shape.dim, shapes[inp.name]):
                if d.dim_param:
                    known[d.dim_param] = size
    from ..models.io import ModelIO

    sym = ModelIO.from_onnx(model).batch_symbol  # `batch` wherever it sits: axis 1 of a [layers, batch, h] state
    if sym is not None:
        known.setdefault(sym, batch)
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        if inp.name in shapes:
            fixed[inp.name] = shapes[inp.name]
            continue
        dims = inp.type.tensor_type.shape.dim
        shape = []
        for i, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(d.dim_value)
            elif i == 0:
                shape.append(batch)
            elif d.dim_param in known:
                shape.append(known[d.dim_param])
            else:
                sym = d.dim_param or "?"
                raise UsageError(f"input {inp.name!r} has a symbolic dimension {sym!r} at axis {i} "
                                 "whose size cannot be inferred",
                                 f"pass --shape {inp.name}=" + "x".join(
                                     str(x.dim_value) if x.dim_value > 0 else ("B" if j == 0 else "N")
                                     for j, x in enumerate(dims)) + " with numbers")
        fixed[inp.name] = shape
    return fixed


def _named(model):
    """A copy with every node uniquely named: onnxruntime's profiler reports each kernel by node name."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    seen: set[str] = set()
    for i, node in enumerate(m.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.name or node.op_type}__{i}"
        seen.add(node.name)
    return m


def _dummy(dtype: str, shape: list[int], rng, name: str = "") -> np.ndarray:
    """A feed of onnxruntime type `dtype` ("tensor(int64)") and `shape`, as models.io makes them."""
    from ..models.io import dummy

    kind = dtype[len("tensor("):-1] if dtype.startswith("tensor(") else "float"
    kind = {"float": "float32", "double": "float64"}.get(kind, kind)
    try:
        np.dtype(kind)
    except TypeError:  # a type numpy has no name for: a float feed, as before
        kind = "float32"
    return dummy(kind, shape, rng, name)


def _executed(model, fixed: dict[str, list[int]], level: str, path) -> tuple[object, list[dict]]:
    """Run the model once in onnxruntime at `level` with profiling on: the graph as it was optimized and
    every kernel that ran, in order, with the shapes it saw. This is the graph a device runs: dynamic-shape
    subgraphs, fusions and the layout transforms of level ALL (NCHWc reorders, NHWC int8 convs) included."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as td:
        src, dst = Path(td) / "in.onnx", Path(td) / "opt.onnx"
        onnx.save(model, str(src))
        quiet_onnxruntime()
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        so.graph_optimization_level = {"extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                       "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
        so.optimized_model_filepath = str(dst)
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(td) / "profile")
        so.log_severity_level = log_severity()
        rng = np.random.default_rng(0)
        try:
            sess = ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
            feeds = {i.name: _dummy(i.type, fixed[i.name], rng, i.name) for i in sess.get_inputs() if i.name in fixed}
            sess.run(None, feeds)
        except UsageError:  # an input too big to make: said as it is
            raise
        except Exception as e:  # a wrong --shape, or an op onnxruntime cannot run here
            shapes = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in fixed.items())
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UsageError(f"onnxruntime could not run {path} with inputs {shapes}: {reason}",
                             "check --shape / --batch match what the model accepts") from None
        events = json.loads(Path(sess.end_profiling()).read_text())
        opt = onnx.load(str(dst))
    kernels = [dict(e["args"], node=e["name"][:-len("_kernel_time")]) for e in events
               if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    return opt, kernels


def _shapes(entries) -> list[tuple[str, list[int]]]:
    """Profiler `input_type_shape` / `output_type_shape` -> [(dtype, shape)]."""
    return [next(iter(e.items())) for e in entries or [] if e]


def _elems(shape) -> float:
    return float(math.prod(shape)) if shape else 1.0


def _op_class(op: str) -> str:
    for cls, ops in (("conv", CONV_OPS), ("gemm", GEMM_OPS), ("eltwise", ELTWISE_OPS), ("norm", NORM_OPS),
                     ("datamove", MOVE_OPS), ("free", FREE_OPS)):
        if op in ops:
            return cls
    return "other"


def _family(op: str, cls: str) -> str:
    """The kernel family of a node: op classes split where kernels differ (Q/DQ, softmax, norms, pools)."""
    if cls in ("conv", "dwconv", "gemm", "free"):
        return cls
    if op in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
        return "qdq"
    if "Softmax" in op:
        return "softmax"
    if "LayerNormalization" in op:
        return "layernorm"
    if "Pool" in op or op.startswith("Reduce"):
        return "pool"
    return cls if cls in ("eltwise", "datamove") else "eltwise"


NCHWC = "com.microsoft.nchwc"


def _layout(node, producers: dict) -> str:
    """x86 level ALL runs convs in blocked NCHWc layout; one whose input is still plain NCHW (the chain's
    first conv, or one after a channel count the block does not divide) takes a much slower path."""
    if node is None or node.domain != NCHWC:
        return ""
    src = producers.get(node.input[0])
    blocked = src is not None and src.domain == NCHWC and src.op_type != "ReorderOutput"
    return "-nchwc" if blocked else "-nchwc-nchw"


def _node_cost(k: dict, node, inits: dict, producers: dict) -> NodeCost:
    """FLOPs and bytes of one kernel that ran: activation shapes from the profiler, weight shapes and
    attributes from the optimized graph (pre-packed weights are missing from the profiler's shapes)."""
    op = k.get("op_name") or (node.op_type if node is not None else "?")
    ins, outs = _shapes(k.get("input_type_shape")), _shapes(k.get("output_type_shape"))
    out_shape = list(outs[0][1]) if outs else []
    names = [n for n in node.input] if node is not None else []
    weights = [inits[n] for n in names if n in inits]
    nbytes = float(k.get("activation_size", 0)) + float(k.get("output_size", 0))
    nbytes += sum(_elems(w.dims) * DTYPE_BYTES.get(w.data_type, 4) for w in weights) if node is not None \
        else float(k.get("parameter_size", 0))
    int8 = op in INT8_OPS or (ins and ins[0][0] in ("int8", "uint8"))
    cls, flops, family, dims = _op_class(op), 0.0, "", []
    attrs = {a.name: a for a in node.attribute} if node is not None else {}
    if cls == "conv":
        wi = 3 if "QLinearConv" in op else 1
        w = list(inits[names[wi]].dims) if len(names) > wi and names[wi] in inits else \
            (list(ins[wi][1]) if len(ins) > wi else [])
        if len(w) >= 3:
            ref = ins[0][1] if op == "ConvTranspose" and ins else out_shape
            flops = 2.0 * _elems(ref) * w[1] * _elems(w[2:])
            group = attrs["group"].i if "group" in attrs else 1
            cls = "dwconv" if group > 1 and w[1] == 1 else "conv"
            stride = max(attrs["strides"].ints) if "strides" in attrs else 1
            spatial = _elems(out_shape) / max(1, w[0])
            dims = [w[0], spatial, _elems(w[2:]), stride] if cls == "dwconv" else \
                [w[1], w[0], spatial, _elems(w[2:]), stride]
            dims.append(_variant(cls, int8, w, attrs, names, inits))
            family = cls + _layout(node, producers)
    elif cls == "gemm":
        flops = _gemm_flops(op, ins, out_shape, attrs)
        n_out = out_shape[-1] if out_shape else 1
        bi = 3 if op in ("QLinearMatMul", "QGemm") else 1
        batched = len(names) > bi and names[bi] not in inits and op not in ("Attention", "QAttention")
        rows = _elems(out_shape) / max(1, n_out)
        k_dim = flops / 2.0 / max(1.0, _elems(out_shape))
        if batched and len(out_shape) >= 3:
            family = "bmm"
            dims = [_elems(out_shape[:-2]), out_shape[-2], k_dim, n_out]
        else:
            dims = [rows, k_dim, n_out]
    elif cls == "free":
        nbytes = 0.0
    else:
        dims = [max(nbytes, 1.0)]
    family = family or _family(op, cls)
    wbytes = sum(_elems(w.dims) * DTYPE_BYTES.get(w.data_type, 4) for w in weights if len(w.dims) >= 2)
    return NodeCost(k.get("node", op), op, cls, "int8" if int8 else "fp32", flops, nbytes, out_shape, family, dims,
                    float(wbytes))


VARIANT = 16.0  # a kernel-variant flag's value in a family's dims (4 log2 units from 1: another neighbourhood)


def _variant(cls: str, int8: bool, w: list, attrs: dict, names: list, inits: dict) -> float:
    """A conv's kernel variant, the last of its dims: what changes its speed at equal shape.

    fp32: an activation other than Relu (Clip = ReLU6, HardSigmoid, ...) runs as a pass over each output
    block after the kernel, not in its inner loop (MobileNets' depthwise convs take ~50% longer).
    int8: whether MLAS's symmetric indirect-conv kernels apply (int8 weights with zero point 0; dense: input
    channels and output channels multiples of 4 and >= 16 outputs; depthwise: channels a multiple of 16),
    or the slower im2col + GEMM path does (up to 7x slower per FLOP at few channels).
    VARIANT marks the unusual case, 1.0 the usual; the kernel tables learn what each costs on a device."""
    if not int8:
        act = attrs["activation"].s.decode() if "activation" in attrs else ""
        return VARIANT if act not in ("", "Relu") else 1.0
    from onnx import numpy_helper

    zp = inits.get(names[5]) if len(names) > 5 else None
    if zp is None or np.any(numpy_helper.to_array(zp) != 0) or zp.data_type != 3:  # 3: int8
        return 1.0
    cin, cout = w[1], w[0]
    if cls == "dwconv":
        return VARIANT if cout % 16 == 0 else 1.0
    return VARIANT if cin % 4 == 0 and cout % 4 == 0 and cout >= 16 else 1.0


def _gemm_flops(op, ins, out_shape, attrs) -> float:
    """2 x output elements x K, with K read off the first input (transA-aware); attention blocks count their
    projections and the two batched products."""
    a = list(ins[0][1]) if ins else []
    if op in ("Attention", "QAttention", "MultiHeadAttention"):
        if len(a) != 3:
            return 0.0
        b, s, d = a
        proj = 2.0 * b * s * d * 3 * d if op != "MultiHeadAttention" else 0.0
        return proj + 2.0 * 2 * b * s * s * d
    if not a or not out_shape:
        return 0.0
    trans_a = attrs["transA"].i if "transA" in attrs else 0
    k = a[-2] if trans_a and len(a) >= 2 else a[-1]
    return 2.0 * _elems(out_shape) * k


def analyze(path: str | os.PathLike, batch: int = 1, shapes: dict[str, list[int]] | None = None,
            level: str = "extended") -> GraphCost:
    """Cost of every kernel onnxruntime runs for the model at the given batch / input shapes.

    `level` is the graph optimization level to reproduce: "all" (what a session runs by default, including
    layout transforms that depend on this CPU) when the target has this machine's architecture,
    "extended" (portable fusions only) otherwise."""
    return _analysis(path, batch, shapes, level)[0]


def _analysis(path, batch: int, shapes, level: str):
    """(GraphCost, the optimized model, [(kernel record, its node or None)]) in the order the kernels ran."""
    from ..deploy.runtime import check_onnx_file

    if batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}", "e.g. --batch 1")
    model = check_onnx_file(path)
    fixed = _fixed_inputs(model, batch, shapes or {})
    opt, kernels = _executed(_named(model), fixed, level, path)
    by_name = {n.name: n for n in opt.graph.node}
    inits = {i.name: i for i in opt.graph.initializer}
    producers = {o: n for n in opt.graph.node for o in n.output}
    nodes, unknown, ran = [], [], []
    for k in kernels:
        node = by_name.get(k["node"])
        cost = _node_cost(k, node, inits, producers)
        if cost.op_class == "other":
            unknown.append(cost.op_type)
            cost.op_class = "eltwise"  # a generic bandwidth-bound node: priced, and listed in a warning
        nodes.append(cost)
        ran.append((k, node))
    return GraphCost(nodes, fixed, sorted(set(unknown)), level), opt, ran


# element types of the profiler's shape records -> (ONNX type, numpy type)
_TYPES = {"float": (1, np.float32), "uint8": (2, np.uint8), "int8": (3, np.int8), "int32": (6, np.int32),
          "int64": (7, np.int64), "bool": (9, np.bool_)}


def isolate(path: str | os.PathLike, level: str = "all") -> tuple[GraphCost, list[tuple[NodeCost, object, dict]]]:
    """The model's cost at batch 1 and every kernel it runs as a graph of its own: (its cost, a one-node
    model of the optimized graph, feeds). Timed with optimizations off, each measures exactly that kernel as
    the whole graph runs it (same fused op, layout and pre-packed weights), so calibration needs no guess at
    how a graph's time splits among its kernels. Kernels that cannot stand alone are left out: those with
    integer activation inputs (shape arithmetic, gather indices), whose values random feeds cannot supply."""
    from onnx import helper

    cost, opt, ran = _analysis(path, 1, None, level)
    inits = {i.name: i for i in opt.graph.initializer}
    rng = np.random.default_rng(0)
    out = []
    for c, (k, node) in zip(cost.nodes, ran):
        if node is None or c.op_class == "free":
            continue
        names = list(node.input)
        ins, outs = _shapes(k.get("input_type_shape")), _shapes(k.get("output_type_shape"))
        acts = [n for n in names if n and n not in inits]
        typed = [(n, s) for n, s in zip(names, ins) if n and n not in inits] if len(ins) == len(names) \
            else list(zip(acts, ins))
        outputs = [o for o in node.output if o]
        if len(typed) != len(acts) or len(outs) < len(outputs) or \
                any(t not in _TYPES for t, _ in [s for _, s in typed] + outs[:len(outputs)]) or \
                any(t in ("int32", "int64", "bool") for t, _ in [s for _, s in typed]):
            continue  # integer inputs carry shapes or indices: random values would not run
        feeds = {n: rng.random(shape, dtype=np.float32) if t == "float" else
                 np.asarray(rng.random(shape) * 100.0).astype(_TYPES[t][1]) for n, (t, shape) in typed}
        graph = helper.make_graph(
            [node], "kernel", [helper.make_tensor_value_info(n, _TYPES[t][0], shape) for n, (t, shape) in typed],
            [helper.make_tensor_value_info(o, _TYPES[t][0], shape) for o, (t, shape) in zip(outputs, outs)],
            initializer=[inits[n] for n in dict.fromkeys(names) if n in inits])
        model = helper.make_model(graph, opset_imports=list(opt.opset_import))
        model.ir_version = opt.ir_version
        out.append((c, model, feeds))
    return cost, out

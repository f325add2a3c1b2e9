"""ONNX graph cost analysis: fix the input shapes, let onnxruntime fuse the graph as it would at run time,
then count FLOPs and bytes moved per fused node and give each node an op class.

Needs only onnx, onnxruntime and numpy (no torch), so it runs on a device too.
"""
from __future__ import annotations

import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path


from ..errors import UsageError

# op class of each op type (after ORT fusion); compute classes are FLOP-bound, the rest bandwidth-bound
CONV_OPS = {"Conv", "FusedConv", "QLinearConv", "ConvInteger", "NhwcConv", "ConvTranspose"}
GEMM_OPS = {"Gemm", "FusedGemm", "MatMul", "FusedMatMul", "QLinearMatMul", "MatMulInteger", "QGemm",
            "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulNBits", "Attention", "MultiHeadAttention",
            "QAttention", "Einsum"}
ELTWISE_OPS = {"Add", "Sub", "Mul", "Div", "Relu", "Clip", "Sigmoid", "Tanh", "Erf", "Gelu", "FastGelu",
               "BiasGelu", "QuickGelu", "LeakyRelu", "HardSigmoid", "HardSwish", "Exp", "Log", "Sqrt", "Pow",
               "Neg", "Abs", "Max", "Min", "Where", "Equal", "Cast", "QLinearAdd", "QLinearMul",
               "QLinearSigmoid", "QLinearLeakyRelu", "QuantizeLinear", "DequantizeLinear",
               "DynamicQuantizeLinear", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
               "QLinearGlobalAveragePool", "QLinearAveragePool", "BiasAdd", "Dropout", "Identity", "Not",
               "And", "Or", "Floor", "Ceil", "Round", "Reciprocal", "Softplus", "Mish", "PRelu"}
NORM_OPS = {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
            "SkipSimplifiedLayerNormalization", "BatchNormalization", "InstanceNormalization",
            "GroupNormalization", "Softmax", "LogSoftmax", "QLinearSoftmax", "ReduceMean", "ReduceSum",
            "ReduceMax", "ReduceL2", "EmbedLayerNormalization", "BiasSoftmax"}
MOVE_OPS = {"Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "Pad", "Expand", "Tile",
            "Resize", "Upsample", "DepthToSpace", "SpaceToDepth", "QLinearConcat", "ScatterND", "Range",
            "Trilu", "GatherND", "TopK", "ArgMax", "CumSum", "OneHot"}
FREE_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Shape", "Constant", "ConstantOfShape", "Size"}
INT8_OPS = {"QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger", "QGemm", "MatMulIntegerToFloat",
            "DynamicQuantizeMatMul", "QAttention", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
            "QLinearAveragePool", "QLinearSoftmax", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu"}
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

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GraphCost:
    nodes: list[NodeCost]
    input_shapes: dict[str, list[int]]
    unknown_ops: list[str]       # op types with no class: costed as generic bandwidth-bound nodes
    optimized: bool              # False when ORT could not optimize and the raw graph was used

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
            else:
                sym = d.dim_param or "?"
                raise UsageError(f"input {inp.name!r} has a symbolic dimension {sym!r} at axis {i} "
                                 "whose size cannot be inferred",
                                 f"pass --shape {inp.name}=" + "x".join(
                                     str(x.dim_value) if x.dim_value > 0 else ("B" if j == 0 else "N")
                                     for j, x in enumerate(dims)) + " with numbers")
        fixed[inp.name] = shape
    unknown = set(shapes) - set(fixed)
    if unknown:
        raise UsageError(f"--shape names input {sorted(unknown)[0]!r}, which the model does not have "
                         f"(inputs: {', '.join(fixed)})", "use one of the model's input names")
    return fixed


def _with_shapes(model, fixed: dict[str, list[int]]):
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for inp in m.graph.input:
        if inp.name in fixed:
            inp.type.tensor_type.shape.ClearField("dim")
            for d in fixed[inp.name]:
                inp.type.tensor_type.shape.dim.add().dim_value = int(d)
    for out in m.graph.output:  # outputs are re-inferred for the fixed input shapes
        out.type.tensor_type.ClearField("shape")
    return m


def _shape_table(model) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Tensor name -> shape and elem type, from ONNX shape inference (unknown ops are skipped)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        inferred = model
    shapes, types = {}, {}
    g = inferred.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
        if tt.HasField("shape") and all(d >= 0 for d in dims):
            shapes[vi.name] = dims
        types[vi.name] = tt.elem_type
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
        types[init.name] = init.data_type
    return shapes, types


def _ort_optimized(model) -> tuple[object, bool]:
    """The graph as onnxruntime runs it on CPU: EXTENDED level fuses Conv+Act, MatMul+Add, GELU, LayerNorm,
    attention and QDQ groups, without the x86-only NCHWc layout of level ALL."""
    import onnx

    from ..onnxutil import session

    with tempfile.TemporaryDirectory() as td:
        src, dst = Path(td) / "in.onnx", Path(td) / "opt.onnx"
        onnx.save(model, str(src))
        try:
            session(src, threads=1, optimized_path=str(dst), level="extended")
            return onnx.load(str(dst)), True
        except Exception:
            return model, False


def _elems(shape) -> float:
    return float(math.prod(shape)) if shape else 1.0


def _node_cost(node, shapes, types, inits) -> NodeCost:
    op = node.op_type
    ins = [n for n in node.input if n]
    outs = [n for n in node.output if n]
    out_shape = shapes.get(outs[0], []) if outs else []
    nbytes = 0.0
    for t in ins + outs:
        if t in shapes:
            nbytes += _elems(shapes[t]) * DTYPE_BYTES.get(types.get(t, 1), 4)
    int8 = op in INT8_OPS or any(types.get(t) in (2, 3) for t in ins[:1])
    dtype = "int8" if int8 else "fp32"
    flops, cls = 0.0, "other"
    attrs = {a.name: a for a in node.attribute}
    if op in CONV_OPS:
        w = ins[3] if op == "QLinearConv" else ins[1]
        wshape = shapes.get(w)
        group = attrs["group"].i if "group" in attrs else 1
        if wshape and out_shape:
            k = _elems(wshape[2:])
            flops = 2.0 * _elems(out_shape) * wshape[1] * k  # out elems x (Cin/group) x kernel, 2 per MAC
        cin = (wshape[1] * group) if wshape else 0
        cls = "dwconv" if group > 1 and group == cin else "conv"
    elif op in GEMM_OPS:
        cls = "gemm"
        flops = _gemm_flops(node, shapes, ins, out_shape, attrs)
    elif op in ELTWISE_OPS:
        cls = "eltwise"
    elif op in NORM_OPS:
        cls = "norm"
    elif op in MOVE_OPS:
        cls = "datamove"
    elif op in FREE_OPS:
        cls, nbytes = "free", 0.0
    return NodeCost(node.name or op, op, cls, dtype, flops, nbytes, out_shape)


def _gemm_dims(node, shapes, ins, attrs) -> tuple[float, int, int, int, list[int]] | None:
    """(batch, M, K, N, output shape) of a GEMM-like node, from its input shapes alone (ORT's fused nodes
    often write tensors that ONNX shape inference cannot see)."""
    op = node.op_type
    a_name = ins[0]
    b_name = {"QLinearMatMul": 3, "QGemm": 3}.get(op, 1)
    b_name = ins[b_name] if len(ins) > b_name else None
    a, b = shapes.get(a_name), shapes.get(b_name) if b_name else None
    if not a or not b or len(a) < 2 or len(b) < 2:
        return None
    get = lambda k: attrs[k].i if k in attrs else 0  # noqa: E731
    if op in ("Gemm", "FusedGemm", "QGemm"):
        m, k = (a[1], a[0]) if get("transA") else (a[0], a[1])
        n = b[0] if get("transB") else b[1]
        return 1.0, m, k, n, [m, n]
    m, k = (a[-1], a[-2]) if get("transA") else (a[-2], a[-1])
    n = b[-2] if get("transB") else b[-1]
    batch_a, batch_b = a[:-2], b[:-2]
    rank = max(len(batch_a), len(batch_b))
    batch_a, batch_b = [1] * (rank - len(batch_a)) + batch_a, [1] * (rank - len(batch_b)) + batch_b
    batch = [max(x, y) for x, y in zip(batch_a, batch_b)]
    if any(k.startswith("transBatch") and attrs[k].i for k in attrs):  # FusedMatMul's folded transposes
        batch = a[:-2]
    return float(math.prod(batch)) if batch else 1.0, m, k, n, [*batch, m, n]


def _gemm_flops(node, shapes, ins, out_shape, attrs) -> float:
    op = node.op_type
    if op in ("Attention", "QAttention", "MultiHeadAttention"):
        x = shapes.get(ins[0])
        if not x or len(x) != 3:
            return 0.0
        b, s, d = x
        proj = 2.0 * b * s * d * 3 * d if op != "MultiHeadAttention" else 0.0
        return proj + 2.0 * 2 * b * s * s * d  # QK^T and PV
    a = shapes.get(ins[0])
    if out_shape and a:
        # out = [batch, M, N] and A holds batch*M*K values, so FLOPs = 2*|A|*N whatever the transposes
        return 2.0 * _elems(a) * out_shape[-1]
    dims = _gemm_dims(node, shapes, ins, attrs)
    if dims is None:
        return 0.0
    batch, m, k, n, out = dims
    shapes[node.output[0]] = out
    return 2.0 * batch * m * k * n


def _propagate(node, shapes, types, consts) -> None:
    """Fill the first output's shape when inference missed it: shape-preserving ops keep their input's
    shape (the larger one for broadcasts), Transpose permutes it."""
    outs = [o for o in node.output if o]
    if not outs or outs[0] in shapes:
        return
    known = [shapes[i] for i in node.input if i in shapes and shapes[i]]
    if not known:
        return
    first = shapes.get(node.input[0]) if node.input else None
    if node.op_type == "Reshape" and first and len(node.input) > 1 and node.input[1] in consts:
        target = [int(v) for v in consts[node.input[1]]]
        target = [first[i] if v == 0 and i < len(first) else v for i, v in enumerate(target)]
        if target.count(-1) == 1:
            rest = math.prod(v for v in target if v != -1)
            target[target.index(-1)] = int(_elems(first) // rest) if rest else 0
        if all(v > 0 for v in target):
            shapes[outs[0]] = target
    elif node.op_type == "Transpose" and first:
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), list(range(len(first)))[::-1])
        shapes[outs[0]] = [first[p] for p in perm]
    elif node.op_type in ELTWISE_OPS or node.op_type in NORM_OPS - {"ReduceMean", "ReduceSum", "ReduceMax",
                                                                     "ReduceL2"}:
        shapes[outs[0]] = max(known, key=_elems)
    if node.input and node.input[0] in types and outs[0] not in types:
        types[outs[0]] = types[node.input[0]]


def analyze(path: str | os.PathLike, batch: int = 1, shapes: dict[str, list[int]] | None = None,
            optimize: bool = True) -> GraphCost:
    """Cost of every node of the model as onnxruntime would run it, for the given batch / input shapes."""
    from ..onnxutil import check_onnx_file

    if batch < 1:
        raise UsageError(f"--batch must be >= 1, got {batch}", "e.g. --batch 1")
    model = check_onnx_file(path)
    fixed = _fixed_inputs(model, batch, shapes or {})
    model = _with_shapes(model, fixed)
    shapes0, types0 = _shape_table(model)
    opt, ok = _ort_optimized(model) if optimize else (model, False)
    shapes1, types1 = _shape_table(opt) if ok else ({}, {})
    shapes_all = {**shapes1, **shapes0}
    types_all = {**types1, **types0}
    inits = {i.name for i in opt.graph.initializer}
    from onnx import numpy_helper
    consts = {i.name: numpy_helper.to_array(i) for i in opt.graph.initializer
              if i.data_type == 7 and len(i.dims) == 1 and i.dims[0] <= 8}  # small int64: Reshape targets
    nodes, unknown = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for node in opt.graph.node:  # topological order: propagated shapes feed later nodes
            if node.op_type in GEMM_OPS:
                _gemm_flops(node, shapes_all, [n for n in node.input if n], shapes_all.get(node.output[0], []),
                            {a.name: a for a in node.attribute})
            else:
                _propagate(node, shapes_all, types_all, consts)
            cost = _node_cost(node, shapes_all, types_all, inits)
            if cost.op_class == "other":
                unknown.append(node.op_type)
                cost.op_class = "eltwise"  # a generic bandwidth-bound node: priced, and listed in a warning
            nodes.append(cost)
    return GraphCost(nodes, fixed, sorted(set(unknown)), ok)

"""The calibration micro-benchmark suite: single-kernel ONNX graphs built with onnx.helper (no torch), with
shapes sampled like edge models' layers — dense/1x1/depthwise convs, GEMMs, batched MatMuls, elementwise,
softmax, norms, pools, transposes — in fp32, plus int8 versions made by onnxruntime's own quantizer."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OPSET = 17
DENSE_ACTS = ["Relu", "Relu", "Clip", None]     # activations drawn for dense convs
MOBILE_ACTS = ["Relu", "Clip", "Clip", None]    # and for 1x1 / depthwise convs (MobileNets: ReLU6, linear)


@dataclass
class Micro:
    name: str
    model: object                 # onnx.ModelProto
    feeds: dict[str, np.ndarray]
    quantizable: bool = False     # also measured as int8 (static QDQ)


def _rng():
    return np.random.default_rng(0)


def _model(nodes, inputs, outputs, inits):
    from onnx import helper

    graph = helper.make_graph(nodes, "micro", inputs, outputs, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    m.ir_version = 8
    return _typed_outputs(m)


def _typed_outputs(m):
    """Give graph outputs the shapes that ONNX shape inference finds (the checker wants them)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(m).graph
    known = {vi.name: vi for vi in [*inferred.value_info, *inferred.output] if vi.type.tensor_type.HasField("shape")}
    for out in m.graph.output:
        if out.name in known:
            out.CopyFrom(known[out.name])
    return m


def _tensor(name, shape):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _init(name, arr):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def _act(act: str | None, x: str, y: str) -> tuple[list, list]:
    """(nodes, initializers) of a conv's activation: Relu, Clip (ReLU6, as MobileNets use) or none."""
    from onnx import helper

    if act == "Clip":
        return [helper.make_node("Clip", [x, f"{y}_lo", f"{y}_hi"], [y])], \
            [_init(f"{y}_lo", np.float32(0.0)), _init(f"{y}_hi", np.float32(6.0))]
    return [helper.make_node(act or "Identity", [x], [y])], []


def conv(cin, cout, hw, k, stride=1, group=1, act: str | None = "Relu", batch=1) -> Micro:
    """One conv and its activation. onnxruntime fuses Relu into its conv kernels' inner loop but runs
    other activations (Clip = ReLU6) as a pass over each output block, which costs depthwise convs ~50%."""
    from onnx import helper

    rng = _rng()
    w = rng.normal(0, 0.1, (cout, cin // group, k, k))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[k // 2] * 4, strides=[stride] * 2,
                              group=group)]
    act_nodes, act_inits = _act(act, "c", "y")
    m = _model(nodes + act_nodes, [_tensor("x", [batch, cin, hw, hw])], [_tensor("y", None)],
               [_init("w", w), _init("b", np.zeros(cout)), *act_inits])
    kind = "dwconv" if group > 1 else ("conv1x1" if k == 1 else "conv")
    suffix = "" if act == "Relu" else f"_{(act or 'none').lower()}"
    return Micro(f"{kind}_c{cin}-{cout}_hw{hw}_k{k}_s{stride}_b{batch}{suffix}", m,
                 {"x": rng.random((batch, cin, hw, hw), dtype=np.float32)}, True)


def gemm(m_, k, n, linear=False) -> Micro:
    """MatMul + Add + Relu, or with `linear` a Gemm with transposed weights + Relu (torch's nn.Linear export,
    which int8 quantization turns into QGemm rather than QLinearMatMul + QLinearAdd)."""
    from onnx import helper

    rng = _rng()
    if linear:
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["a"], transB=1), helper.make_node("Relu", ["a"], ["y"])]
        w = rng.normal(0, 0.05, (n, k))
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["a"]),
                 helper.make_node("Relu", ["a"], ["y"])]
        w = rng.normal(0, 0.05, (k, n))
    model = _model(nodes, [_tensor("x", [m_, k])], [_tensor("y", None)], [_init("w", w), _init("b", np.zeros(n))])
    return Micro(f"gemm_m{m_}_k{k}_n{n}{'_linear' if linear else ''}", model,
                 {"x": rng.random((m_, k), dtype=np.float32)}, True)


def layernorm(rows, d) -> Micro:
    from onnx import helper

    m = _model([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1)],
               [_tensor("x", [1, rows, d])], [_tensor("y", None)], [_init("g", np.ones(d)), _init("b", np.zeros(d))])
    return Micro(f"layernorm_{rows}x{d}", m, {"x": _rng().random((1, rows, d), dtype=np.float32)})


def matmul(batch, m_, k, n) -> Micro:
    """A batched product of two activations (attention's QK^T and PV)."""
    from onnx import helper

    rng = _rng()
    model = _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                   [_tensor("a", [batch, m_, k]), _tensor("b", [batch, k, n])], [_tensor("y", None)], [])
    return Micro(f"bmm_b{batch}_m{m_}_k{k}_n{n}", model, {"a": rng.random((batch, m_, k), dtype=np.float32),
                                                         "b": rng.random((batch, k, n), dtype=np.float32)}, True)


def unary(op, shape, **attrs) -> Micro:
    """One memory-bound op on one input (pools, activations, transposes, reductions)."""
    from onnx import helper

    m = _model([helper.make_node(op, ["x"], ["y"], **attrs)], [_tensor("x", list(shape))], [_tensor("y", None)], [])
    return Micro(f"{op.lower()}_{'x'.join(map(str, shape))}", m, {"x": _rng().random(shape, dtype=np.float32)},
                 op not in ("Erf", "Sigmoid", "LayerNormalization"))


def binary(op, shape) -> Micro:
    from onnx import helper

    rng = _rng()
    m = _model([helper.make_node(op, ["x", "z"], ["y"])], [_tensor("x", list(shape)), _tensor("z", list(shape))],
               [_tensor("y", None)], [])
    return Micro(f"{op.lower()}_{'x'.join(map(str, shape))}", m, {"x": rng.random(shape, dtype=np.float32),
                                                                  "z": rng.random(shape, dtype=np.float32)}, True)


def _pick(rng, values):
    return values[int(rng.integers(len(values)))]


def nothing() -> Micro:
    """A graph that does (almost) nothing: one Identity on one value. Timed, it is the fixed cost of a run."""
    from onnx import helper

    m = _model([helper.make_node("Identity", ["x"], ["y"])], [_tensor("x", [1])], [_tensor("y", [1])], [])
    return Micro("nothing", m, {"x": np.ones(1, np.float32)})


def tiny_chain(length: int) -> Micro:
    """`length` Sin ops in a row on 16 values: timed at several lengths, the cost each kernel adds to a graph
    when its work is next to nothing (dispatch, allocation), which no kernel timed alone can show."""
    from onnx import helper

    names = ["x"] + [f"s{i}" for i in range(length - 1)] + ["y"]
    nodes = [helper.make_node("Sin", [a], [b]) for a, b in zip(names[:-1], names[1:])]
    m = _model(nodes, [_tensor("x", [1, 16])], [_tensor("y", [1, 16])], [])
    return Micro(f"tiny_chain_{length}", m, {"x": np.ones((1, 16), np.float32)})


STREAM_SHAPES = [(256, 256), (512, 256), (512, 512), (1024, 512), (1024, 1024), (2048, 1024), (2048, 2048),
                 (4096, 2048)]  # fp32 weights of 0.25-32 MB: from inside L2 to beyond any edge device's LLC


def stream(k: int, n: int) -> Micro:
    """A one-row fp32 MatMul (GEMV) over a k x n weight: its time per weight byte is what streaming weights
    costs from wherever a footprint of that size lives (L2, last-level cache, DRAM)."""
    from onnx import helper

    m = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_tensor("x", [1, k])], [_tensor("y", [1, n])],
               [_init("w", _rng().normal(0, 0.05, (k, n)))])
    return Micro(f"stream_{k}x{n}", m, {"x": np.ones((1, k), np.float32)})


def sampled(count: int = 1, seed: int = 0) -> list[Micro]:
    """Single-kernel graphs with shapes sampled like edge models' layers (nn-Meter's idea): each family
    `count` x its weight of random configurations, most under 60 MFLOP so the suite stays quick, plus
    larger batched convs, depthwise convs and GEMMs (up to 400 / 80 / 600 MFLOP) where mobile nets and
    encoders run at batch 4-8, and GEMMs with 0.25-16 MB of weights at batch 1-8 (heads, FFNs)."""
    rng = np.random.default_rng(seed)
    forms = np.random.default_rng(seed + 1000)  # activations and GEMM forms drawn apart: shapes stay put
    chans = [3, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 256]
    hws = [2, 4, 7, 8, 14, 16, 28, 32, 56, 64, 96]
    dims = [4, 8, 16, 32, 64, 100, 128, 256, 384, 512, 768, 1024, 2048]
    out: list[Micro] = []

    def budget(flops, limit=6e7):
        return flops <= limit

    while len([m for m in out if m.name.startswith("conv")]) < 28 * count:
        cin, cout, hw, k = _pick(rng, chans), _pick(rng, chans[1:]), _pick(rng, hws), _pick(rng, [1, 3, 3, 5])
        s, b = _pick(rng, [1, 1, 2]), _pick(rng, [1, 1, 1, 2, 4, 8])
        if hw >= k and budget(2 * b * cout * (hw // s) ** 2 * cin * k * k):
            out.append(conv(cin, cout, hw, k, s, act=_pick(forms, DENSE_ACTS), batch=b))
    while len([m for m in out if m.name.startswith("conv")]) < 38 * count:  # large: mobile-net layers at batch 4-8
        cin, cout, hw, k = _pick(rng, chans[3:]), _pick(rng, chans[4:]), _pick(rng, hws[5:]), _pick(rng, [1, 1, 3])
        b = _pick(rng, [4, 8])
        if hw >= k and 6e7 < 2 * b * cout * hw ** 2 * cin * k * k <= 4e8:
            out.append(conv(cin, cout, hw, k, 1, act=_pick(forms, DENSE_ACTS), batch=b))
    while len([m for m in out if m.name.startswith("conv1x1")]) < 24 * count:  # pointwise: mobile nets' workhorse
        cin, cout = _pick(rng, chans[2:]), _pick(rng, chans[2:])
        hw, b = _pick(rng, hws[1:]), _pick(rng, [1, 1, 2, 4, 8])
        if 2 * b * cout * hw ** 2 * cin <= 2e8:
            out.append(conv(cin, cout, hw, 1, 1, act=_pick(forms, MOBILE_ACTS), batch=b))
    while len([m for m in out if m.name.startswith("dwconv")]) < 14 * count:
        c, hw, k, s, b = _pick(rng, chans[2:] + [192, 384, 576]), _pick(rng, hws[1:]), _pick(rng, [3, 3, 5]), \
            _pick(rng, [1, 1, 2]), _pick(rng, [1, 1, 2, 4])
        if hw >= k and budget(2 * b * c * (hw // s) ** 2 * k * k, 1e7):
            out.append(conv(c, c, hw, k, s, group=c, act=_pick(forms, MOBILE_ACTS), batch=b))
    while len([m for m in out if m.name.startswith("dwconv")]) < 20 * count:  # large
        c, hw = _pick(rng, [32, 64, 128, 256, 384]), _pick(rng, hws[5:])
        s_, b = _pick(rng, [1, 1, 2]), _pick(rng, [4, 8])
        if 1e7 < 2 * b * c * (hw // s_) ** 2 * 9 <= 8e7:
            out.append(conv(c, c, hw, 3, s_, group=c, act=_pick(forms, MOBILE_ACTS), batch=b))
    while len([m for m in out if m.name.startswith("gemm")]) < 24 * count:
        m_, k, n = _pick(rng, [1, 1, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]), _pick(rng, dims), _pick(rng, dims)
        if budget(2 * m_ * k * n):
            out.append(gemm(m_, k, n, linear=bool(forms.integers(2))))
    while len([m for m in out if m.name.startswith("gemm")]) < 36 * count:  # heads / FFNs at small batch:
        m_, k, n = _pick(rng, [1, 1, 2, 4, 8]), _pick(rng, dims[7:]), _pick(rng, dims[7:])  # weights 0.25-16 MB
        out.append(gemm(m_, k, n, linear=bool(forms.integers(2))))
    while len([m for m in out if m.name.startswith("gemm")]) < 44 * count:  # large: encoder layers at batch 4-8
        m_, k, n = _pick(rng, [128, 256, 512, 1024]), _pick(rng, dims[6:12]), _pick(rng, dims[6:12])
        if 6e7 < 2 * m_ * k * n <= 6e8:
            out.append(gemm(m_, k, n, linear=bool(forms.integers(2))))
    while len([m for m in out if m.name.startswith("bmm")]) < 8 * count:
        b, m_, k = _pick(rng, [1, 4, 8, 16, 32, 64]), _pick(rng, [8, 16, 32, 64, 128]), _pick(rng, [16, 32, 64])
        n = _pick(rng, [k, m_])
        if budget(2 * b * m_ * k * n, 2e7):
            out.append(matmul(b, m_, k, n))
    for _ in range(4 * count):  # memory-bound ops over sizes from a few values to a few MB
        elems = int(2 ** rng.uniform(2, 20))
        c = _pick(rng, [8, 16, 32, 64])
        hw = max(2, int(math.sqrt(max(elems // c, 4))))
        rows = max(1, elems // 128)
        out += [binary(_pick(rng, ["Add", "Mul"]), (1, elems)),
                unary(_pick(rng, ["Relu", "Sigmoid", "Erf"]), (1, elems)),
                unary("Softmax", (rows, 128), axis=-1), unary("Transpose", (1, c, hw, hw), perm=[0, 2, 3, 1]),
                unary("MaxPool", (1, c, 2 * hw, 2 * hw), kernel_shape=[2, 2], strides=[2, 2]),
                unary("GlobalAveragePool", (1, c, hw, hw))]
        d = _pick(forms, [32, 64, 128, 256, 768])  # encoders' widths, from 16-token students to BERT-base
        out.append(layernorm(max(1, elems // d), d))
    return out


def _conv_node(x, y, w, b, k, stride=1, group=1):
    from onnx import helper

    return helper.make_node("Conv", [x, w, b], [y], pads=[k // 2] * 4, strides=[stride] * 2, group=group)


def conv_chain(cin, c, hw, k, layers, batch=1) -> Micro:
    """A plain CNN stage: conv cin->c then (layers - 1) convs c->c, each + Relu. Chains, not lone kernels,
    are what models run: layout reorders happen at the chain's ends and activations stay in cache."""
    from onnx import helper

    rng = _rng()
    nodes, inits, x = [], [], "x"
    for i in range(layers):
        ci = cin if i == 0 else c
        inits += [_init(f"w{i}", rng.normal(0, 0.1, (c, ci, k, k))), _init(f"b{i}", np.zeros(c))]
        nodes += [_conv_node(x, f"c{i}", f"w{i}", f"b{i}", k), helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x = f"r{i}"
    m = _model(nodes, [_tensor("x", [batch, cin, hw, hw])], [_tensor(x, None)], inits)
    return Micro(f"convchain_c{cin}-{c}_hw{hw}_k{k}_l{layers}_b{batch}", m,
                 {"x": rng.random((batch, cin, hw, hw), dtype=np.float32)}, True)


def inverted_residual(c, hw, expand, k=3, batch=1, act="Relu") -> Micro:
    """A MobileNetV2 block: 1x1 expand + act, kxk depthwise + act, 1x1 project, residual Add."""
    from onnx import helper

    rng = _rng()
    mid = c * expand
    inits = [_init("w1", rng.normal(0, 0.1, (mid, c, 1, 1))), _init("b1", np.zeros(mid)),
             _init("w2", rng.normal(0, 0.1, (mid, 1, k, k))), _init("b2", np.zeros(mid)),
             _init("w3", rng.normal(0, 0.1, (c, mid, 1, 1))), _init("b3", np.zeros(c))]
    expand_act, expand_inits = _act(act, "e", "ea")
    dw_act, dw_inits = _act(act, "d", "da")
    nodes = [_conv_node("x", "e", "w1", "b1", 1), *expand_act, _conv_node("ea", "d", "w2", "b2", k, group=mid),
             *dw_act, _conv_node("da", "p", "w3", "b3", 1), helper.make_node("Add", ["x", "p"], ["y"])]
    m = _model(nodes, [_tensor("x", [batch, c, hw, hw])], [_tensor("y", None)], inits + expand_inits + dw_inits)
    return Micro(f"invres_c{c}_hw{hw}_t{expand}_k{k}_b{batch}_{act.lower()}", m,
                 {"x": rng.random((batch, c, hw, hw), dtype=np.float32)}, True)


def mlp_chain(batch, widths, linear=False) -> Micro:
    """Fully connected layers of the given widths: MatMul + Add + Relu, or with `linear` torch's nn.Linear
    export, Gemm with transposed weights + Relu (QGemm in int8, up to 2x slower than QLinearMatMul at batch 1)."""
    from onnx import helper

    rng = _rng()
    nodes, inits, x = [], [], "x"
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        inits += [_init(f"w{i}", rng.normal(0, 0.05, (b, a) if linear else (a, b))), _init(f"b{i}", np.zeros(b))]
        if linear:
            nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"a{i}"], transB=1))
        else:
            nodes += [helper.make_node("MatMul", [x, f"w{i}"], [f"m{i}"]),
                      helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        nodes.append(helper.make_node("Relu", [f"a{i}"], [f"r{i}"]))
        x = f"r{i}"
    m = _model(nodes, [_tensor("x", [batch, widths[0]])], [_tensor(x, None)], inits)
    return Micro(f"mlpchain_b{batch}_{'-'.join(map(str, widths))}{'_linear' if linear else ''}", m,
                 {"x": rng.random((batch, widths[0]), dtype=np.float32)}, True)


def attention(seq, d, heads, batch=1) -> Micro:
    """One self-attention block: QKV projections, scaled QK^T, softmax, PV, output projection."""
    from onnx import helper, numpy_helper

    rng = _rng()
    hd = d // heads
    inits = [_init(f"w{n}", rng.normal(0, 0.05, (d, d))) for n in "qkvo"]
    inits += [numpy_helper.from_array(np.array([batch, seq, heads, hd], np.int64), "split_shape"),
              numpy_helper.from_array(np.array([batch, seq, d], np.int64), "merge_shape"),
              _init("scale", np.array(1.0 / np.sqrt(hd)))]
    nodes = []
    for n in "qkv":
        nodes += [helper.make_node("MatMul", ["x", f"w{n}"], [f"{n}p"]),
                  helper.make_node("Reshape", [f"{n}p", "split_shape"], [f"{n}r"]),
                  helper.make_node("Transpose", [f"{n}r"], [f"{n}h"], perm=[0, 2, 3, 1] if n == "k" else [0, 2, 1, 3])]
    nodes += [helper.make_node("MatMul", ["qh", "kh"], ["s"]), helper.make_node("Mul", ["s", "scale"], ["ss"]),
              helper.make_node("Softmax", ["ss"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "vh"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ot", "merge_shape"], ["om"]),
              helper.make_node("MatMul", ["om", "wo"], ["y"])]
    m = _model(nodes, [_tensor("x", [batch, seq, d])], [_tensor("y", None)], inits)
    return Micro(f"attention_s{seq}_d{d}_h{heads}_b{batch}", m,
                 {"x": rng.random((batch, seq, d), dtype=np.float32)}, True)


def sampled_blocks(count: int = 1, seed: int = 1) -> list[Micro]:
    """Short chains and blocks with sampled sizes: CNN stages, inverted residuals, MLPs, attention."""
    rng = np.random.default_rng(seed)
    out: list[Micro] = []
    while len(out) < 12 * count:
        cin, c, hw, k = _pick(rng, [3, 8, 16, 32, 64]), _pick(rng, [8, 16, 24, 32, 48, 64, 96, 128]), \
            _pick(rng, [8, 16, 32, 64]), _pick(rng, [1, 3, 3])
        layers, b = _pick(rng, [2, 3, 4]), _pick(rng, [1, 1, 2, 4, 8])
        if 2 * b * hw * hw * c * (cin + (layers - 1) * c) * k * k <= 1.2e8:
            out.append(conv_chain(cin, c, hw, k, layers, b))
    while len(out) < 22 * count:
        c, hw, t, k, b = _pick(rng, [8, 16, 24, 32, 64, 96]), _pick(rng, [4, 8, 16, 32, 48]), _pick(rng, [1, 3, 6]), \
            _pick(rng, [3, 3, 5]), _pick(rng, [1, 1, 2, 4, 8])
        if 2 * b * hw * hw * c * c * t * 2 <= 6e7:
            out.append(inverted_residual(c, hw, t, k, b, act="Clip" if len(out) % 2 else "Relu"))
    while len(out) < 32 * count:
        depth = _pick(rng, [2, 3, 4])
        widths = [_pick(rng, [16, 32, 64, 128, 256, 512, 784, 1024]) for _ in range(depth + 1)]
        out.append(mlp_chain(_pick(rng, [1, 1, 2, 8, 32]), widths, linear=len(out) % 2 == 0))
    while len(out) < 38 * count:
        seq, d, b = _pick(rng, [8, 16, 32, 64, 128]), _pick(rng, [32, 64, 128, 256]), _pick(rng, [1, 1, 4, 8])
        heads = _pick(rng, [1, 2, 4])
        if b * seq * d * (8 * d + 4 * seq) <= 1e8:
            out.append(attention(seq, d, heads, b))
    return out

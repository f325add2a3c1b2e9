"""The calibration micro-benchmark suite: small ONNX graphs built with onnx.helper (no torch), covering
every op class the predictor prices — dense/1x1/depthwise convs, GEMM/MatMul, elementwise, norms, data
movement and an attention block — in fp32, plus int8 versions made by onnxruntime's own quantizer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPSET = 17


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


def conv(cin, cout, hw, k, stride=1, group=1, relu=True, batch=1) -> Micro:
    from onnx import helper

    rng = _rng()
    w = rng.normal(0, 0.1, (cout, cin // group, k, k))
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[k // 2] * 4, strides=[stride] * 2,
                              group=group)]
    nodes.append(helper.make_node("Relu", ["c"], ["y"]) if relu else helper.make_node("Identity", ["c"], ["y"]))
    m = _model(nodes, [_tensor("x", [batch, cin, hw, hw])], [_tensor("y", None)],
               [_init("w", w), _init("b", np.zeros(cout))])
    kind = "dwconv" if group > 1 else ("conv1x1" if k == 1 else "conv")
    return Micro(f"{kind}_c{cin}-{cout}_hw{hw}_k{k}_s{stride}_b{batch}", m,
                 {"x": rng.random((batch, cin, hw, hw), dtype=np.float32)}, True)


def block(cin, hw, expand, batch=1) -> Micro:
    """A MobileNetV2 inverted residual: 1x1 expand + Clip, 3x3 depthwise + Clip, 1x1 project, residual Add."""
    from onnx import helper, numpy_helper

    rng = _rng()
    mid = cin * expand
    inits = [_init("w1", rng.normal(0, 0.1, (mid, cin, 1, 1))), _init("b1", np.zeros(mid)),
             _init("w2", rng.normal(0, 0.1, (mid, 1, 3, 3))), _init("b2", np.zeros(mid)),
             _init("w3", rng.normal(0, 0.1, (cin, mid, 1, 1))), _init("b3", np.zeros(cin)),
             numpy_helper.from_array(np.array(0, np.float32), "lo"), numpy_helper.from_array(np.array(6, np.float32), "hi")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["e"]), helper.make_node("Clip", ["e", "lo", "hi"], ["ea"]),
             helper.make_node("Conv", ["ea", "w2", "b2"], ["d"], pads=[1] * 4, group=mid),
             helper.make_node("Clip", ["d", "lo", "hi"], ["da"]), helper.make_node("Conv", ["da", "w3", "b3"], ["p"]),
             helper.make_node("Add", ["x", "p"], ["y"])]
    m = _model(nodes, [_tensor("x", [batch, cin, hw, hw])], [_tensor("y", None)], inits)
    return Micro(f"invres_c{cin}_hw{hw}_t{expand}_b{batch}", m,
                 {"x": rng.random((batch, cin, hw, hw), dtype=np.float32)}, True)


def basic_block(c, hw, batch=1) -> Micro:
    """A ResNet basic block: conv3x3 + Relu, conv3x3, residual Add, Relu."""
    from onnx import helper

    rng = _rng()
    inits = [_init("w1", rng.normal(0, 0.1, (c, c, 3, 3))), _init("b1", np.zeros(c)),
             _init("w2", rng.normal(0, 0.1, (c, c, 3, 3))), _init("b2", np.zeros(c))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1] * 4), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w2", "b2"], ["c"], pads=[1] * 4), helper.make_node("Add", ["x", "c"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    m = _model(nodes, [_tensor("x", [batch, c, hw, hw])], [_tensor("y", None)], inits)
    return Micro(f"basic_c{c}_hw{hw}_b{batch}", m, {"x": rng.random((batch, c, hw, hw), dtype=np.float32)}, True)


def gemm(m_, k, n) -> Micro:
    from onnx import helper

    rng = _rng()
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    model = _model(nodes, [_tensor("x", [m_, k])], [_tensor("y", None)],
                   [_init("w", rng.normal(0, 0.05, (k, n))), _init("b", np.zeros(n))])
    return Micro(f"gemm_m{m_}_k{k}_n{n}", model, {"x": rng.random((m_, k), dtype=np.float32)}, True)


def eltwise_chain(size, length) -> Micro:
    from onnx import helper

    names = ["x"] + [f"t{i}" for i in range(length - 1)] + ["y"]
    ops = ["Relu", "Sigmoid", "Neg", "Abs"]
    nodes = [helper.make_node(ops[i % len(ops)], [names[i]], [names[i + 1]]) for i in range(length)]
    m = _model(nodes, [_tensor("x", [1, size])], [_tensor("y", None)], [])
    return Micro(f"eltwise_n{size}_len{length}", m, {"x": _rng().random((1, size), dtype=np.float32)})


def add(size) -> Micro:
    from onnx import helper

    m = _model([helper.make_node("Add", ["x", "z"], ["y"])], [_tensor("x", [1, size]), _tensor("z", [1, size])],
               [_tensor("y", None)], [])
    rng = _rng()
    return Micro(f"add_n{size}", m, {"x": rng.random((1, size), dtype=np.float32),
                                     "z": rng.random((1, size), dtype=np.float32)})


def softmax(shape) -> Micro:
    from onnx import helper

    m = _model([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [_tensor("x", list(shape))],
               [_tensor("y", None)], [])
    return Micro(f"softmax_{'x'.join(map(str, shape))}", m, {"x": _rng().random(shape, dtype=np.float32)})


def layernorm(rows, d) -> Micro:
    from onnx import helper

    m = _model([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1)],
               [_tensor("x", [1, rows, d])], [_tensor("y", None)], [_init("g", np.ones(d)), _init("b", np.zeros(d))])
    return Micro(f"layernorm_{rows}x{d}", m, {"x": _rng().random((1, rows, d), dtype=np.float32)})


def transpose(c, hw) -> Micro:
    from onnx import helper

    m = _model([helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], [_tensor("x", [1, c, hw, hw])],
               [_tensor("y", None)], [])
    return Micro(f"transpose_c{c}_hw{hw}", m, {"x": _rng().random((1, c, hw, hw), dtype=np.float32)})


def concat(c, hw) -> Micro:
    from onnx import helper

    m = _model([helper.make_node("Concat", ["x", "z"], ["y"], axis=1)],
               [_tensor("x", [1, c, hw, hw]), _tensor("z", [1, c, hw, hw])], [_tensor("y", None)], [])
    rng = _rng()
    return Micro(f"concat_c{c}_hw{hw}", m, {"x": rng.random((1, c, hw, hw), dtype=np.float32),
                                            "z": rng.random((1, c, hw, hw), dtype=np.float32)})


def attention(seq, d, heads) -> Micro:
    """One self-attention block: QKV projections, scaled QK^T, softmax, PV, output projection."""
    from onnx import helper, numpy_helper

    rng = _rng()
    hd = d // heads
    inits = [_init(f"w{n}", rng.normal(0, 0.05, (d, d))) for n in "qkvo"]
    inits += [numpy_helper.from_array(np.array([1, seq, heads, hd], np.int64), "split_shape"),
              numpy_helper.from_array(np.array([1, seq, d], np.int64), "merge_shape"),
              _init("scale", np.array(1.0 / np.sqrt(hd)))]
    nodes = []
    for n in "qkv":
        nodes += [helper.make_node("MatMul", ["x", f"w{n}"], [f"{n}p"]),
                  helper.make_node("Reshape", [f"{n}p", "split_shape"], [f"{n}r"]),
                  helper.make_node("Transpose", [f"{n}r"], [f"{n}h"],
                                   perm=[0, 2, 3, 1] if n == "k" else [0, 2, 1, 3])]
    nodes += [helper.make_node("MatMul", ["qh", "kh"], ["s"]), helper.make_node("Mul", ["s", "scale"], ["ss"]),
              helper.make_node("Softmax", ["ss"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "vh"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ot", "merge_shape"], ["om"]),
              helper.make_node("MatMul", ["om", "wo"], ["y"])]
    m = _model(nodes, [_tensor("x", [1, seq, d])], [_tensor("y", None)], inits)
    return Micro(f"attention_s{seq}_d{d}_h{heads}", m, {"x": rng.random((1, seq, d), dtype=np.float32)}, True)


def suite(quick: bool = False) -> list[Micro]:
    """The fp32 suite; `quick` keeps a third of it (for tests)."""
    items = [
        conv(3, 16, 64, 3), conv(16, 32, 32, 3), conv(32, 64, 16, 3), conv(64, 64, 16, 3), conv(32, 32, 32, 3, 2),
        conv(64, 128, 8, 3), conv(16, 16, 48, 5), conv(8, 16, 16, 3),
        conv(32, 64, 32, 1), conv(64, 128, 16, 1), conv(128, 128, 8, 1), conv(16, 96, 32, 1), conv(96, 24, 16, 1),
        conv(32, 32, 32, 3, 1, 32), conv(64, 64, 32, 3, 1, 64), conv(96, 96, 16, 3, 1, 96),
        conv(144, 144, 28, 3, 2, 144), conv(256, 256, 8, 3, 1, 256), conv(32, 32, 48, 5, 1, 32),
        gemm(1, 256, 256), gemm(1, 1024, 1024), gemm(8, 512, 512), gemm(32, 256, 1024), gemm(64, 768, 768),
        gemm(128, 128, 128), gemm(1, 64, 16), gemm(16, 2048, 256),
        add(1000), add(100_000), add(1_000_000), eltwise_chain(256, 1), eltwise_chain(256, 16),
        eltwise_chain(256, 48), eltwise_chain(50_000, 4),
        softmax((1, 1000)), softmax((1, 8, 128, 128)), layernorm(128, 256), layernorm(64, 768),
        transpose(64, 56), transpose(16, 16), concat(32, 28), concat(8, 8),
        attention(32, 128, 4), attention(128, 256, 4), attention(64, 384, 6),
        conv(8, 8, 32, 3), conv(8, 16, 64, 3), conv(16, 16, 32, 3, batch=4), conv(3, 8, 32, 3),
        conv(16, 32, 16, 3, 2), conv(24, 48, 24, 1, batch=4), conv(48, 48, 24, 3, 1, 48, batch=4),
        conv(8, 8, 64, 3, 1, 8), gemm(4, 128, 64), gemm(8, 64, 256), gemm(256, 64, 64),
        block(8, 32, 4), block(16, 16, 6), block(24, 32, 4, batch=4), block(64, 8, 6),
        basic_block(8, 32), basic_block(16, 16), basic_block(32, 8, batch=4), basic_block(64, 8),
    ]
    return items[::3] if quick else items

"""Whole networks for calibration: the families edgekd sizes and the shapes users bring — plain CNNs,
inverted-residual nets, MLPs and transformer encoders — built with onnx.helper (no torch: calibration also
runs on a device), sizes sampled from a seed.

Kernels timed alone fit the small pieces; a whole network also pays for what no kernel alone pays:
activations handed from node to node through colder caches, weights that spill from L2 or L3 once the whole
model runs, the session's per-node bookkeeping. Calibration times a set of these networks and fits the
correction (calibrate.fit_networks); benchmarks draw other seeds as held-out models.
"""
from __future__ import annotations

import numpy as np

from .micro import Micro, _act, _conv_node, _init, _model, _pick, _tensor

FAMILIES = ("cnn", "invres", "mlp", "encoder")


class _Graph:
    """Nodes and initializers of a network being built, with fresh tensor names."""

    def __init__(self, rng):
        self.rng, self.nodes, self.inits, self.n = rng, [], [], 0

    def name(self, stem: str) -> str:
        self.n += 1
        return f"{stem}{self.n}"

    def weight(self, shape, scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        name = self.name("w")
        self.inits.append(_init(name, self.rng.normal(0, scale or (2.0 / max(fan_in, 1)) ** 0.5, shape)))
        return name

    def const(self, arr, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = self.name("k")
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype), name))
        return name

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        y = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [y], **attrs))
        return y

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, group: int = 1,
             act: str | None = "Relu") -> str:
        w = self.weight((cout, cin // group, k, k))
        b = self.const(np.zeros(cout))
        y = self.name("conv")
        self.nodes.append(_conv_node(x, y, w, b, k, stride, group))
        if act is None:
            return y
        nodes, inits = _act(act, y, self.name("act"))
        self.nodes += nodes
        self.inits += inits
        return nodes[0].output[0]

    def linear(self, x: str, a: int, b: int) -> str:
        return self.op("Add", [self.op("MatMul", [x, self.weight((a, b), (1.0 / a) ** 0.5)]),
                               self.const(np.zeros(b))])

    def head(self, x: str, c: int, classes: int) -> str:
        pooled = self.op("Flatten", [self.op("GlobalAveragePool", [x])])
        return self.linear(pooled, c, classes)


def cnn(rng, batch: int) -> Micro:
    """A plain CNN: conv stages (1-3 convs each) doubling the channels and halving the size, then a head."""
    hw, c, stages = _pick(rng, [32, 48, 64, 96]), _pick(rng, [8, 16, 24, 32]), _pick(rng, [2, 3, 4])
    g, x, cin = _Graph(rng), "x", 3
    for s in range(stages):
        for i in range(_pick(rng, [1, 2, 2, 3])):
            x = g.conv(x, cin, c, _pick(rng, [3, 3, 1]) if i else 3, stride=2 if (i == 0 and s) else 1)
            cin = c
        c = min(2 * c, 256)
    y = g.head(x, cin, 10)
    return _net(f"net_cnn_hw{hw}_s{stages}_b{batch}", g, [batch, 3, hw, hw], y, rng)


def invres(rng, batch: int) -> Micro:
    """A MobileNetV2-like net: a stride-2 stem, inverted residual blocks (stride 2 at each new width,
    residual Add otherwise, ReLU or ReLU6), a 1x1 to a wide last layer, then a head."""
    hw, width = _pick(rng, [32, 64, 96, 128]), _pick(rng, [0.35, 0.5, 0.75, 1.0])
    act = _pick(rng, ["Relu", "Clip"])
    g = _Graph(rng)
    c = max(8, int(32 * width) // 8 * 8)
    x = g.conv("x", 3, c, 3, stride=2, act=act)
    for out_c, blocks in zip((16, 24, 32, 64, 96)[:_pick(rng, [3, 4, 5])], (1, 2, 3, 3, 2)):
        out_c = max(8, int(out_c * width) // 8 * 8)
        for i in range(blocks):
            t = 1 if out_c == 16 else _pick(rng, [3, 6, 6])
            stride = 2 if i == 0 and out_c != 16 else 1
            y = g.conv(x, c, c * t, 1, act=act) if t > 1 else x
            y = g.conv(y, c * t, c * t, _pick(rng, [3, 3, 5]), stride=stride, group=c * t, act=act)
            y = g.conv(y, c * t, out_c, 1, act=None)
            x = g.op("Add", [x, y]) if stride == 1 and c == out_c else y
            c = out_c
    last = _pick(rng, [256, 512, 1024])
    x = g.conv(x, c, last, 1, act=act)
    y = g.head(x, last, 10)
    return _net(f"net_invres_hw{hw}_w{width}_b{batch}", g, [batch, 3, hw, hw], y, rng)


def mlp(rng, batch: int) -> Micro:
    """Fully connected layers (MatMul + Add + Relu), 2-5 of them, 16 to 2048 wide."""
    widths = [_pick(rng, [64, 128, 256, 512, 784, 1024, 2048]) for _ in range(_pick(rng, [3, 4, 5, 6]))]
    g, x = _Graph(rng), "x"
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        x = g.linear(x, a, b)
        if i < len(widths) - 2:
            x = g.op("Relu", [x])
    return _net(f"net_mlp_{'-'.join(map(str, widths))}_b{batch}", g, [batch, widths[0]], x, rng)


def encoder(rng, batch: int) -> Micro:
    """A post-norm transformer encoder as torch exports it: per layer Q/K/V projections, scaled QK^T,
    softmax, PV, output projection, Add + LayerNormalization, a GELU (Erf) FFN, Add + LayerNormalization;
    then mean over the sequence and a classifier."""
    seq, d, layers = _pick(rng, [16, 32, 64, 128]), _pick(rng, [64, 128, 192, 256, 384]), _pick(rng, [1, 2, 3, 4])
    heads = _pick(rng, [2, 4]) if d % 4 == 0 else 2
    g, x = _Graph(rng), "x"
    split = g.const([batch, seq, heads, d // heads], np.int64)
    merge = g.const([batch, seq, d], np.int64)
    scale = g.const(1.0 / np.sqrt(d // heads))

    def norm(v):
        return g.op("LayerNormalization", [v, g.const(np.ones(d)), g.const(np.zeros(d))], axis=-1)

    for _ in range(layers):
        q, k, v = (g.op("Transpose", [g.op("Reshape", [g.linear(x, d, d), split])],
                        perm=[0, 2, 3, 1] if n == "k" else [0, 2, 1, 3]) for n in "qkv")
        p = g.op("Softmax", [g.op("Mul", [g.op("MatMul", [q, k]), scale])], axis=-1)
        o = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [p, v])], perm=[0, 2, 1, 3]), merge])
        x = norm(g.op("Add", [x, g.linear(o, d, d)]))
        h = g.linear(x, d, 4 * d)
        gelu = g.op("Mul", [g.op("Mul", [h, g.op("Add", [g.op("Erf", [g.op("Div", [h, g.const(2 ** 0.5)])]),
                                                         g.const(1.0)])]), g.const(0.5)])
        x = norm(g.op("Add", [x, g.linear(gelu, 4 * d, d)]))
    y = g.linear(g.op("ReduceMean", [x], axes=[1], keepdims=0), d, 4)
    return _net(f"net_encoder_s{seq}_d{d}_l{layers}_b{batch}", g, [batch, seq, d], y, rng)


def _net(name: str, g: _Graph, shape: list[int], y: str, rng) -> Micro:
    m = _model(g.nodes, [_tensor("x", shape)], [_tensor(y, None)], g.inits)
    return Micro(name, m, {"x": rng.random(shape, dtype=np.float32)}, True)


BUILDERS = {"cnn": cnn, "invres": invres, "mlp": mlp, "encoder": encoder}


def sampled_networks(count: int = 3, seed: int = 0, batches: tuple[int, ...] = (1, 8)) -> list[Micro]:
    """`count` networks of every family, each at a batch drawn from `batches`, sizes drawn from `seed`:
    calibration uses seed 0; held-out benchmarks other seeds."""
    rng = np.random.default_rng(seed)
    return [BUILDERS[f](rng, _pick(rng, list(batches))) for _ in range(count) for f in FAMILIES]

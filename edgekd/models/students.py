"""Student families with width/depth knobs, built from a spec such as `mlp:hidden=128,depth=2`.

A student is recorded as {family, kwargs, input_shape, num_classes}; `build` rebuilds the same network
from that record, so `student.pt` holds only a state dict and JSON (loadable with weights_only=True).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..registry import Registry


def _mlp(input_shape, num_classes, hidden: int = 128, depth: int = 1, dropout: float = 0.0):
    import torch.nn as nn

    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(int(depth)):
        layers += [nn.Linear(width, int(hidden)), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(float(dropout)))
        width = int(hidden)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _divisible(v: float, d: int = 8) -> int:
    return max(d, int(v + d / 2) // d * d)


def _mobilenet(input_shape, num_classes, width: float = 1.0, depth: float = 1.0, expand: int = 4):
    """MobileNetV2-style: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project)."""
    import torch.nn as nn

    if len(input_shape) != 3:
        raise UsageError(f"mobilenet students need (C, H, W) inputs, got {tuple(input_shape)}",
                         "use --student mlp for flat features")

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, t):
            super().__init__()
            mid = cin * t
            self.use_res = stride == 1 and cin == cout
            self.block = nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
                nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
                nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            return x + self.block(x) if self.use_res else self.block(x)

    # (channels, blocks, stride): a small-image version of MobileNetV2's stages
    stages = [(16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 2, 1)]
    stem = _divisible(16 * width)
    layers: list[nn.Module] = [nn.Conv2d(input_shape[0], stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU6()]
    cin = stem
    for c, n, s in stages:
        cout = _divisible(c * width)
        for i in range(max(1, round(n * depth))):
            layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, int(expand)))
            cin = cout
    head = _divisible(128 * max(1.0, width))
    layers += [nn.Conv2d(cin, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU6(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(head, num_classes)]
    return nn.Sequential(*layers)


def _resnet(input_shape, num_classes, width: float = 1.0, depth: int = 1):
    """ResNet-style: basic blocks (two 3x3 convs and a skip) in three stages."""
    import torch.nn as nn

    if len(input_shape) != 3:
        raise UsageError(f"resnet students need (C, H, W) inputs, got {tuple(input_shape)}",
                         "use --student mlp for flat features")

    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.body(x) + self.skip(x))

    chans = [_divisible(c * width) for c in (16, 32, 64)]
    layers: list[nn.Module] = [nn.Conv2d(input_shape[0], chans[0], 3, 1, 1, bias=False),
                               nn.BatchNorm2d(chans[0]), nn.ReLU()]
    cin = chans[0]
    for i, c in enumerate(chans):
        for j in range(max(1, int(depth))):
            layers.append(Basic(cin, c, 2 if (i > 0 and j == 0) else 1))
            cin = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def _transformer(input_shape, num_classes, hidden: int = 64, layers: int = 2, heads: int = 4, ff: int = 0,
                 vocab: int = 0):
    """A transformer encoder: for (seq, features) float inputs a linear embedding, for (seq,) token ids an
    embedding table of `vocab` ids; learned positions, pre-norm layers, mean pooling, linear head."""
    import torch
    import torch.nn as nn

    if len(input_shape) not in (1, 2):
        raise UsageError(f"transformer students need (seq, features) inputs or (seq,) token ids, got "
                         f"{tuple(input_shape)}", "use --student mlp or a CNN family for other inputs")
    if len(input_shape) == 1 and vocab < 1:
        raise UsageError("a transformer student over token ids needs vocab=N (the largest id + 1)",
                         "e.g. --student transformer:hidden=64,vocab=30522")
    if hidden % heads:
        raise UsageError(f"transformer hidden={hidden} must be a multiple of heads={heads}", "e.g. hidden=64,heads=4")

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            seq = input_shape[0]
            self.embed = nn.Embedding(vocab, hidden) if len(input_shape) == 1 else nn.Linear(input_shape[1], hidden)
            self.pos = nn.Parameter(torch.zeros(1, seq, hidden))
            block = nn.TransformerEncoderLayer(hidden, heads, ff or 4 * hidden, dropout=0.0, batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, num_classes)

        def forward(self, x):
            h = self.norm(self.encoder(self.embed(x) + self.pos))
            return self.head(h.mean(1))

    return Encoder()


@dataclass(frozen=True)
class Family:
    """A student family: how to build one, its knobs (name -> type), the width x depth grid that sizing
    searches, and the input rank it takes by default (3: images, 2: sequences, else flat features)."""

    name: str
    build: Callable[..., Any]
    knobs: dict[str, type]
    grid: list[dict]
    default_for_rank: int | None = None


FAMILIES: Registry[Family] = Registry("student family",
                                      "e.g. --student mlp:hidden=128 or --student mobilenet:width=0.5")


def register(family: Family) -> Family:
    """Add a student family (users may add their own; `--student NAME:knob=...` then builds it)."""
    FAMILIES.register(family)
    return family


for _f in [
    Family("mlp", _mlp, {"hidden": int, "depth": int, "dropout": float},
           [{"hidden": h, "depth": d} for d in (1, 2, 3) for h in (16, 32, 64, 128, 256, 512, 1024)]),
    Family("mobilenet", _mobilenet, {"width": float, "depth": float, "expand": int},
           [{"width": w, "depth": d} for d in (0.5, 1.0) for w in (0.25, 0.35, 0.5, 0.75, 1.0, 1.4, 2.0)], 3),
    Family("resnet", _resnet, {"width": float, "depth": int},
           [{"width": w, "depth": d} for d in (1, 2) for w in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)], 3),
    Family("transformer", _transformer, {"hidden": int, "layers": int, "heads": int, "ff": int, "vocab": int},
           [{"layers": n, "hidden": h, "heads": 4} for n in (1, 2, 4) for h in (32, 64, 128, 256)], 2),
]:
    register(_f)


MLP_MAX_FEATURES = 4096  # an MLP over more input features than this is priced out by its first layer alone


def default_family(input_shape: tuple[int, ...], token_ids: bool = False) -> str:
    """Every family that can take the data, joined by +: token ids get a transformer (never an MLP over raw
    ids); other inputs the families registered for their rank (images: the CNN families; (seq, features): a
    transformer) and an MLP too where the flattened input is small enough (8x8 digits: a per-node overhead of
    tiny convs can make the MLP the fastest student by far)."""
    if token_ids:
        return "transformer"
    names = [f.name for f in FAMILIES.values() if f.default_for_rank == len(input_shape)]
    if "mlp" not in names and math.prod(input_shape) <= MLP_MAX_FEATURES:
        names.append("mlp")
    return "+".join(names) or "mlp"


def token_ids(x) -> bool:
    """Integer (seq,) samples: token ids, not features."""
    import numpy as np

    return isinstance(x, np.ndarray) and x.ndim == 2 and np.issubdtype(x.dtype, np.integer)


def with_vocab(spec: str, vocab: int | None) -> str:
    """A transformer spec over token ids gets `vocab` (the largest id + 1) unless it names one."""
    if vocab is None or spec.partition(":")[0] != "transformer" or "vocab=" in spec:
        return spec
    return f"{spec}{',' if ':' in spec else ':'}vocab={vocab}"


def vocab_of(*arrays) -> int | None:
    """The vocabulary a transformer needs for token-id data (None for other data)."""
    if not arrays or not token_ids(arrays[0]):
        return None
    return int(max(int(a.max()) for a in arrays if a is not None)) + 1


def is_entrypoint(spec: str) -> bool:
    """`file.py:build` or `pkg.module:build` (not a built-in family such as `mlp:hidden=64`)."""
    head = spec.partition(":")[0]
    return head not in FAMILIES and (head.endswith(".py") or "." in head or "/" in head)


def parse_spec(spec: str) -> tuple[str, dict]:
    """`mlp:hidden=128,depth=2` -> ("mlp", {"hidden": 128, "depth": 2}), with types checked."""
    family, _, rest = spec.partition(":")
    FAMILIES.lookup(family, f"in {spec!r}")
    kwargs: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        key = key.strip()
        knobs = FAMILIES[family].knobs
        if not eq or key not in knobs:
            raise UsageError(f"student option {part!r} is not a {family} knob (knobs: {', '.join(knobs)})",
                             f"write {family}:{next(iter(knobs))}=VALUE")
        try:
            kwargs[key] = knobs[key](value)
        except ValueError:
            raise UsageError(f"student option {key}={value!r} is not a {knobs[key].__name__}",
                             f"e.g. {family}:{key}=2") from None
        if kwargs[key] < 0 or (kwargs[key] == 0 and key != "dropout"):
            raise UsageError(f"student option {key}={value} must be positive", "use a value > 0")
    return family, kwargs


def spec_of(rec: dict) -> str:
    """A student record as the spec a user types: `mlp:hidden=64,depth=1` (or the entrypoint)."""
    if rec["family"] == "entrypoint":
        return rec["kwargs"]["spec"]
    if rec["family"] == "hf" and "path" in rec["kwargs"]:
        return "hf:" + rec["kwargs"]["path"]
    return rec["family"] + (":" + ",".join(f"{k}={v}" for k, v in rec["kwargs"].items()) if rec["kwargs"] else "")


def record(spec: str, input_shape, num_classes: int) -> dict:
    if is_entrypoint(spec):
        return {"family": "entrypoint", "kwargs": {"spec": spec}, "input_shape": list(input_shape),
                "num_classes": int(num_classes)}
    family, kwargs = parse_spec(spec)
    return {"family": family, "kwargs": kwargs, "input_shape": list(input_shape), "num_classes": int(num_classes)}


def build(rec: dict):
    """Rebuild a student network from its record (a user entrypoint is called with no arguments; a Hugging
    Face student from the config in its record)."""
    if rec["family"] == "hf":
        from .hf import build_from_record

        return build_from_record(rec)
    if rec["family"] == "entrypoint":
        import torch

        from .teachers import resolve_entrypoint

        model = resolve_entrypoint(rec["kwargs"]["spec"], what="student")()
        if not isinstance(model, torch.nn.Module):
            raise UsageError(f"student {rec['kwargs']['spec']} returned {type(model).__name__}, not an nn.Module",
                             "make the factory return an untrained nn.Module")
        return model
    def make():
        return FAMILIES[rec["family"]].build(tuple(rec["input_shape"]), rec["num_classes"], **rec["kwargs"])

    priced(make, f"the student {spec_of(rec)}", 4, "pick a smaller student (e.g. a smaller hidden or width)")
    return make()


def priced(make, what: str, copies: int, fix: str) -> int:
    """The parameters of the model `make()` builds, counted on the meta device (no memory is taken); refused
    when `copies` fp32 copies (2 to load a model, 4 to train one: weights, gradients and Adam's two moments) do
    not fit the memory this host has: `mlp:hidden=100000000` is then an error naming its size, not the
    allocator's `can't allocate memory` or the OOM killer."""
    import torch

    from ..resources import require_memory

    try:
        with torch.device("meta"):
            n = sum(p.numel() for p in make().parameters())
    except (TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise UsageError(f"{what} cannot be built ({type(e).__name__}: {str(e)[:160]})", fix) from None
    require_memory(4 * copies * n, f"{what} ({n:.3g} parameters)", fix)
    return n


def count_flops(model, input_shape) -> int:
    """FLOPs of one forward pass on one sample (torch's FLOP counter: matmuls and convs, 2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, *input_shape)
    counter = FlopCounterMode(display=False)
    try:
        with counter, torch.inference_mode():
            model.eval()(x)
    except Exception:
        return 0
    return int(counter.get_total_flops())


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())

"""Student families with width/depth knobs, built from a spec such as `mlp:hidden=128,depth=2`.

A student is recorded as {family, kwargs, input_shape, num_classes}; `build` rebuilds the same network
from that record, so `student.pt` holds only a state dict and JSON (loadable with weights_only=True).
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ..errors import UsageError


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


FAMILIES: dict[str, Callable[..., Any]] = {"mlp": _mlp, "mobilenet": _mobilenet, "resnet": _resnet}
KNOBS = {"mlp": {"hidden": int, "depth": int, "dropout": float},
         "mobilenet": {"width": float, "depth": float, "expand": int},
         "resnet": {"width": float, "depth": int}}


def parse_spec(spec: str) -> tuple[str, dict]:
    """`mlp:hidden=128,depth=2` -> ("mlp", {"hidden": 128, "depth": 2}), with types checked."""
    family, _, rest = spec.partition(":")
    if family not in FAMILIES:
        raise UsageError(f"unknown student family {family!r} in {spec!r} (known: {', '.join(FAMILIES)})",
                         "e.g. --student mlp:hidden=128 or --student mobilenet:width=0.5")
    kwargs: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in KNOBS[family]:
            raise UsageError(f"student option {part!r} is not a {family} knob (knobs: {', '.join(KNOBS[family])})",
                             f"write {family}:{next(iter(KNOBS[family]))}=VALUE")
        try:
            kwargs[key] = KNOBS[family][key](value)
        except ValueError:
            raise UsageError(f"student option {key}={value!r} is not a {KNOBS[family][key].__name__}",
                             f"e.g. {family}:{key}=2") from None
        if kwargs[key] < 0 or (kwargs[key] == 0 and key != "dropout"):
            raise UsageError(f"student option {key}={value} must be positive", "use a value > 0")
    return family, kwargs


def record(spec: str, input_shape, num_classes: int) -> dict:
    family, kwargs = parse_spec(spec)
    return {"family": family, "kwargs": kwargs, "input_shape": list(input_shape), "num_classes": int(num_classes)}


def build(rec: dict):
    """Rebuild a student network from its record."""
    return FAMILIES[rec["family"]](tuple(rec["input_shape"]), rec["num_classes"], **rec["kwargs"])


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())

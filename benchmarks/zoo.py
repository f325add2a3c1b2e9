"""Reference architectures for benchmarks (random weights; only shapes and op mix matter for latency)."""
from __future__ import annotations

import torch.nn as nn


def _div8(v: float) -> int:
    return max(8, int(v + 4) // 8 * 8)


class _InvRes(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        mid = cin * t
        layers = [] if t == 1 else [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()]
        layers += [nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
                   nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.res else self.block(x)


def mobilenet_v2(width: float = 1.0, classes: int = 1000) -> nn.Module:
    """MobileNetV2 (Sandler et al. 2018), the standard ImageNet configuration: ~300M MACs at 1.0x224."""
    cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    c = _div8(32 * width)
    layers = [nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6()]
    for t, ch, n, s in cfg:
        o = _div8(ch * width)
        for i in range(n):
            layers.append(_InvRes(c, o, s if i == 0 else 1, t))
            c = o
    last = _div8(1280 * max(1.0, width))
    layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(), nn.AdaptiveAvgPool2d(1),
               nn.Flatten(), nn.Linear(last, classes)]
    return nn.Sequential(*layers)


class _Bert(nn.Module):
    def __init__(self, d=768, layers=12, heads=12):
        super().__init__()
        block = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True)
        self.enc = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, x):
        return self.head(self.enc(x)[:, 0])


def bert_encoder() -> nn.Module:
    """A BERT-base-sized encoder (12 layers, d=768, 12 heads, FFN 3072) on embedded inputs (seq, 768)."""
    return _Bert()

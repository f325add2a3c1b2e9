"""ONNX models shaped like the ones users bring, built here (tiny, random weights) with their data.

Each builder writes MODEL.onnx and DATA.npz (arrays named after the inputs) into a folder and returns
(model path, data path). They cover what real models do that edgekd's own students do not: several inputs
with a recurrent state and an int64 scalar, a batch fixed at 1, symbolic height and width, opsets 11-13, a
dense output, a detector's concatenated boxes+scores, and int64 token ids with an attention mask.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


def _export(model, args, path, names, outputs, axes, opset):
    torch.onnx.export(model.eval(), args, str(path), dynamo=False, opset_version=opset, input_names=names,
                      output_names=outputs, dynamic_axes=axes)
    return path


class Audio(nn.Module):
    """A VAD-style model: audio frames, a recurrent state and the sample rate in; a speech probability and
    the next state out."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(256, 32)
        self.cell = nn.GRUCell(32, 32)
        self.head = nn.Linear(32, 1)

    def forward(self, audio, state, sr):
        scale = sr.to(torch.float32) / 16000.0
        h = self.cell(torch.relu(self.enc(audio * scale)), state[:, 0])
        new_state = torch.stack([h, state[:, 1]], 1)
        return torch.sigmoid(self.head(h)), new_state


def audio(root: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    path = _export(Audio(), (torch.zeros(2, 256), torch.zeros(2, 2, 32), torch.tensor(16000)),
                   root / "vad.onnx", ["audio", "state", "sr"], ["prob", "new_state"],
                   {"audio": {0: "batch"}, "state": {0: "batch"}, "prob": {0: "batch"},
                    "new_state": {0: "batch"}}, 13)
    rng = np.random.default_rng(0)
    data = root / "vad.npz"
    np.savez(data, audio=rng.normal(size=(96, 256)).astype(np.float32), sr=np.array(16000, np.int64),
             state=np.zeros((2, 32), np.float32))  # a per-sample initial state (no sample axis): a constant
    return path, data


class SmallCNN(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes))

    def forward(self, x):
        return self.body(x)


def fixed_batch(root: Path) -> tuple[Path, Path]:
    """A classifier exported with its batch fixed at 1 (opset 12), and labelled data."""
    torch.manual_seed(0)
    path = _export(SmallCNN(), (torch.zeros(1, 3, 32, 32),), root / "fixed1.onnx", ["image"], ["logits"], None, 12)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3, 32, 32)).astype(np.float32)
    data = root / "fixed1.npz"
    np.savez(data, image=x, y=rng.integers(0, 4, 40))
    return path, data


class Segmenter(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(16, classes, 1))

    def forward(self, x):
        return self.body(x)


def segmenter(root: Path) -> tuple[Path, Path]:
    """Symbolic height and width, a dense (N, classes, H, W) output, opset 11."""
    torch.manual_seed(0)
    path = _export(Segmenter(), (torch.zeros(1, 3, 48, 48),), root / "seg.onnx", ["pixels"], ["mask"],
                   {"pixels": {0: "batch", 2: "height", 3: "width"}, "mask": {0: "batch", 2: "height", 3: "width"}},
                   11)
    data = root / "seg.npz"
    np.savez(data, pixels=np.random.default_rng(2).normal(size=(24, 3, 48, 48)).astype(np.float32))
    return path, data


def probability_map(root: Path) -> tuple[Path, Path]:
    """A text-detector-style segmenter whose output is already a probability map (a sigmoid in the graph)."""
    torch.manual_seed(0)
    model = nn.Sequential(Segmenter(classes=1), nn.Sigmoid())
    path = _export(model, (torch.zeros(1, 3, 48, 48),), root / "probmap.onnx", ["pixels"], ["prob"],
                   {"pixels": {0: "batch"}, "prob": {0: "batch"}}, 12)
    data = root / "probmap.npz"
    np.savez(data, pixels=np.random.default_rng(7).normal(size=(32, 3, 48, 48)).astype(np.float32))
    return path, data


class Detector(nn.Module):
    """YOLOv8-style head: boxes (4 rows, in pixels) and class scores concatenated into one (N, 4 + C, A)."""

    def __init__(self, classes=6):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.box = nn.Conv2d(32, 4, 1)
        self.cls = nn.Conv2d(32, classes, 1)

    def forward(self, x):
        f = self.body(x)
        boxes = self.box(f).flatten(2) * 64.0 + 64.0
        scores = torch.sigmoid(self.cls(f).flatten(2))
        return torch.cat([boxes, scores], 1)


def _detector(root: Path, make, name: str, samples: int, seed: int) -> tuple[Path, Path]:
    """A detector head (64 x 64 images in, one concatenated `output0` out, opset 13) and its images."""
    torch.manual_seed(0)
    path = _export(make(), (torch.zeros(1, 3, 64, 64),), root / f"{name}.onnx", ["images"], ["output0"],
                   {"images": {0: "batch"}, "output0": {0: "batch"}}, 13)
    data = root / f"{name}.npz"
    np.savez(data, images=np.random.default_rng(seed).random((samples, 3, 64, 64)).astype(np.float32))
    return path, data


def detector(root: Path) -> tuple[Path, Path]:
    return _detector(root, Detector, "det", 24, 3)


class YoloHead(nn.Module):
    """YOLOv8 as it is exported: box coordinates in pixels of a 320 x 320 input (0-640 here) and sigmoid class
    scores, mostly small (background anchors), concatenated into one (N, 4 + C, A) output."""

    def __init__(self, classes=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU())
        self.box = nn.Conv2d(32, 4, 1)
        self.cls = nn.Conv2d(32, classes, 1)

    def forward(self, x):
        f = self.body(x)
        boxes = torch.sigmoid(self.box(f).flatten(2)) * 640.0
        scores = torch.sigmoid(self.cls(f).flatten(2) * 2.0 - 4.0)
        return torch.cat([boxes, scores], 1)


def yolo(root: Path) -> tuple[Path, Path]:
    return _detector(root, YoloHead, "yolo", 48, 6)


class TextClassifier(nn.Module):
    """Token ids and an attention mask in (int64), masked mean pooling, class logits out."""

    def __init__(self, vocab=100, classes=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, 32)
        self.ff = nn.Sequential(nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, classes)

    def forward(self, input_ids, attention_mask):
        h = self.ff(self.emb(input_ids))
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1).clamp(min=1.0))


def text(root: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    ids = torch.zeros(2, 16, dtype=torch.int64)
    path = _export(TextClassifier(), (ids, torch.ones_like(ids)), root / "text.onnx",
                   ["input_ids", "attention_mask"], ["logits"],
                   {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                    "logits": {0: "batch"}}, 13)
    rng = np.random.default_rng(4)
    n = 64
    ids = rng.integers(1, 100, (n, 16)).astype(np.int64)
    mask = np.ones((n, 16), np.int64)
    mask[:, 12:] = 0
    data = root / "text.npz"
    np.savez(data, input_ids=ids, attention_mask=mask, y=rng.integers(0, 2, n))
    return path, data


class VadGRU(nn.Module):
    """A voice-activity model as Silero ships them: a window of samples, a 2-layer GRU state whose batch axis is
    axis 1 (`[layers, batch, hidden]`, as torch's recurrent layers take it) and the sample rate in; the speech
    probability and the next state out."""

    def __init__(self, window=512, hidden=64):
        super().__init__()
        self.enc = nn.Linear(window, hidden)
        self.gru = nn.GRU(hidden, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, input, state, sr):  # noqa: A002 (the name real VAD models give it)
        x = torch.relu(self.enc(input * (sr.to(torch.float32) / 16000.0))).unsqueeze(1)
        out, state_n = self.gru(x, state)
        return torch.sigmoid(self.head(out[:, 0])), state_n


def vad(root: Path) -> tuple[Path, Path]:
    """input [batch, 512], state [2, batch, 64], sr [] -> output [batch, 1], stateN [2, batch, 64] (opset 13);
    the data as a user saves it: 200 windows, one sample's state (2, 1, 64), a scalar rate."""
    torch.manual_seed(0)
    path = _export(VadGRU(), (torch.zeros(3, 512), torch.zeros(2, 3, 64), torch.tensor(16000)), root / "vad_gru.onnx",
                   ["input", "state", "sr"], ["output", "stateN"],
                   {"input": {0: "batch"}, "state": {1: "batch"}, "output": {0: "batch"}, "stateN": {1: "batch"}}, 13)
    rng = np.random.default_rng(5)
    data = root / "vad_gru.npz"
    np.savez(data, input=rng.normal(size=(200, 512)).astype(np.float32), state=np.zeros((2, 1, 64), np.float32),
             sr=np.array(16000, np.int64))
    return path, data


BUILDERS = {"audio": audio, "fixed_batch": fixed_batch, "segmenter": segmenter, "detector": detector, "text": text,
            "vad": vad}


class Inverted(nn.Module):
    """A MobileNetV2-style classifier: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1 project)
    with ReLU6 and a residual add."""

    def __init__(self, width: int = 16, blocks: int = 2, classes: int = 10):
        super().__init__()

        def block(c):
            return nn.Sequential(nn.Conv2d(c, 4 * c, 1), nn.ReLU6(), nn.Conv2d(4 * c, 4 * c, 3, 1, 1, groups=4 * c),
                                 nn.ReLU6(), nn.Conv2d(4 * c, c, 1))
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU6())
        self.blocks = nn.ModuleList(block(width) for _ in range(blocks))
        self.head = nn.Linear(width, classes)

    def forward(self, image):
        x = self.stem(image)
        for b in self.blocks:
            x = x + b(x)
        return self.head(x.mean((2, 3)))


def inverted(root: Path) -> tuple[Path, Path]:
    """A depthwise-separable net at opset 13 with a symbolic batch: the narrow kind int8 finds hard."""
    torch.manual_seed(0)
    path = _export(Inverted(), (torch.zeros(1, 3, 32, 32),), root / "inverted.onnx", ["image"], ["logits"],
                   {"image": {0: "batch"}, "logits": {0: "batch"}}, 13)
    data = root / "inverted.npz"
    np.savez(data, image=np.random.default_rng(3).normal(size=(32, 3, 32, 32)).astype(np.float32))
    return path, data

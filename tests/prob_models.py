"""Teachers whose output is already a probability, trained here on tasks they can learn: a 1-D audio CNN with
a sigmoid over 4 sound events (multi-label), and a classifier ending in softmax. Shared by the tests and
benchmarks/probability_outputs.py."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

FREQS = (3, 7, 13, 21)  # the events: a tone at each of these cycles per clip, present or not

AUDIO_PY = textwrap.dedent('''
    import pathlib
    import torch
    import torch.nn as nn

    def make(head="sigmoid", classes=4):
        act = nn.Sigmoid() if head == "sigmoid" else nn.Softmax(dim=-1)
        return nn.Sequential(nn.Conv1d(1, 32, 9, padding=4), nn.ReLU(),
                             nn.Conv1d(32, 32, 9, padding=4, stride=2), nn.ReLU(),
                             nn.Conv1d(32, 64, 9, padding=4, stride=2), nn.ReLU(),
                             nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, classes), act)

    def _load(head):
        model = make(head)
        path = pathlib.Path(__file__).with_name(f"audio_{head}.pt")
        model.load_state_dict(torch.load(path, weights_only=True))
        return model

    def sigmoid():
        return _load("sigmoid")

    def softmax():
        return _load("softmax")
''')


def audio_data(n: int, seed: int = 0, length: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Noisy clips (n, 1, length) and which events they hold (n, 4) as 0/1."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / length
    y = (rng.random((n, len(FREQS))) < 0.4).astype(np.float32)
    x = rng.normal(0, 0.6, (n, 1, length)).astype(np.float32)
    for k, f in enumerate(FREQS):
        amp = rng.uniform(0.5, 1.5, n) * y[:, k]
        x[:, 0] += (amp[:, None] * np.sin(2 * np.pi * (f * t[None] + rng.random((n, 1))))).astype(np.float32)
    return x, y


def write_teachers(folder: Path, n: int = 1200, epochs: int = 30) -> Path:
    """audio.py (sigmoid(): multi-label events; softmax(): the loudest event of one-event clips), its weights
    trained here, and the data: audio.npz (unlabeled clips) and events.npz (one-event clips, labelled)."""
    import sys

    import torch

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audio.py").write_text(AUDIO_PY)
    sys.path.insert(0, str(folder))
    try:
        import audio
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("audio", None)
    x, y = audio_data(n)
    one = y.argmax(1)  # softmax task: clips of a single event, which one
    xs = audio_data(n, seed=1)[0] * 0
    rng = np.random.default_rng(2)
    t = np.arange(x.shape[-1]) / x.shape[-1]
    xs[:, 0] = np.sin(2 * np.pi * (np.asarray(FREQS)[one][:, None] * t[None] + rng.random((n, 1))))
    xs += rng.normal(0, 0.8, xs.shape).astype(np.float32)
    np.savez(folder / "audio.npz", x=x)
    np.savez(folder / "events.npz", x=xs.astype(np.float32), y=one.astype(np.int64))
    torch.manual_seed(0)
    for head, data, target in (("sigmoid", x, y), ("softmax", xs.astype(np.float32), one)):
        model = audio.make(head)
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        xt, yt = torch.from_numpy(data), torch.from_numpy(np.asarray(target))
        for _ in range(epochs):
            for idx in torch.randperm(n).split(64):
                out = model(xt[idx])
                loss = (torch.nn.functional.binary_cross_entropy(out, yt[idx]) if head == "sigmoid" else
                        torch.nn.functional.nll_loss(out.clamp_min(1e-8).log(), yt[idx]))
                opt.zero_grad()
                loss.backward()
                opt.step()
        torch.save(model.state_dict(), folder / f"audio_{head}.pt")
    return folder

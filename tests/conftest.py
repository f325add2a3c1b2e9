"""Shared fixtures: a tiny learnable data set and a trained tiny teacher, made fresh in temp dirs."""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgekd.cli import cli

TEACHER_PY = textwrap.dedent('''
    import pathlib
    import torch
    import torch.nn as nn

    def make():
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 96), nn.ReLU(), nn.Linear(96, 96), nn.ReLU(), nn.Linear(96, 3))

    def build():
        model = make()
        model.load_state_dict(torch.load(pathlib.Path(__file__).with_name("teacher_weights.pt"), weights_only=True))
        return model

    def not_a_model():
        return {"weights": 1}
''')


def make_data(n: int = 360, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes separable by a random linear map: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 16)).astype(np.float32)
    w = rng.normal(size=(16, 3)).astype(np.float32)
    return x, (x @ w).argmax(1).astype(np.int64)


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """A folder with data.npz, teacher.py (factory `build`) and its trained weights."""
    from edgekd.kd.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("project")
    x, y = make_data()
    np.savez(root / "data.npz", x=x, y=y)
    (root / "teacher.py").write_text(TEACHER_PY)
    ns: dict = {}
    exec(TEACHER_PY, ns)
    torch.manual_seed(0)
    teacher = ns["make"]()
    train(teacher, x, y, TrainConfig(epochs=15, alpha=0.0, seed=0), show_progress=False)
    torch.save(teacher.state_dict(), root / "teacher_weights.pt")
    return root


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


# what a step says while it runs, on stderr: progress lines off a terminal (`distill: 3/30 epochs`,
# `[quantize] trying u8s8 (2 s)`) and notes said as they are known
PROGRESS = re.compile(r"^[\w-]+: \d+(/\d+)? (epochs|done)|^\[[\w-]+\] ")


def error_lines(err: str) -> list[str]:
    """stderr without the progress lines: what a failing command said about its failure."""
    return [ln for ln in err.splitlines() if ln.strip() and not PROGRESS.match(ln)]


def invoke(runner: CliRunner, *args: str):
    """Run the CLI; return (exit code, stdout, stderr)."""
    res = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def invoke_json(runner: CliRunner, *args: str) -> dict:
    code, out, err = invoke(runner, *args, "--json")
    assert code == 0, err
    return json.loads(out)

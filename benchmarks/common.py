"""Helpers shared by the benchmark scripts: the demo teacher and result files."""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ARCH = "edgekd.models.zoo:DigitsCNN"


def demo_teacher() -> str:
    """Path of the digits teacher (trained once by the demo code, then reused)."""
    from edgekd.api.pipeline import demo_teacher as train_or_reuse

    path, _ = train_or_reuse(OUT / "demo", show_progress=False)
    return str(path)


def write_result(name: str, payload: dict) -> Path:
    path = HERE / "results" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path

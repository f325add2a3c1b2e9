"""Run directory layout, the manifest that links the steps, and atomic writes.

Every step reads what earlier steps recorded in `manifest.json` and adds its own section, so
`edgekd export RUN` needs no repeated options. Files are written to a temp name and renamed, so an
interrupted command never leaves half a file behind.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import StepMissingError, UsageError

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1

# The step that writes each artifact, and the command that makes it: used for "run X first" hints.
PRODUCED_BY = {
    "student.pt": "distill",
    "student.onnx": "export",
    "teacher.onnx": "export",
    "student.int8.onnx": "quantize",
    "bench.json": "bench",
}


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `final`; rename it over `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RunDir:
    """A run directory: `manifest.json` plus the artifacts each step wrote."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def create(cls, path: str | os.PathLike) -> "RunDir":
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        if not (run.path / MANIFEST).exists():
            write_json(run.path / MANIFEST, {"schema_version": SCHEMA_VERSION, "created": now(), "steps": {}})
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDir":
        """Open an existing run; a missing directory or manifest is a usage error."""
        run = cls(path)
        if not run.path.is_dir():
            raise UsageError(f"run directory {run.path} does not exist",
                             "pass a directory made by `edgekd distill --out DIR` (or an .onnx file)")
        if not (run.path / MANIFEST).is_file():
            raise UsageError(f"{run.path} has no {MANIFEST}; it is not an edgekd run directory",
                             "run `edgekd distill ... --out DIR` first, or pass an .onnx file")
        return run

    @property
    def manifest(self) -> dict:
        try:
            return json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UsageError(f"{self.path / MANIFEST} is not valid JSON (line {e.lineno}: {e.msg})",
                             "restore it or rerun `edgekd distill`") from None

    def step(self, name: str) -> dict:
        """The manifest section of an earlier step; missing means that step has not run."""
        steps = self.manifest.get("steps", {})
        if name not in steps:
            raise StepMissingError(f"{self.path} has no `{name}` step recorded in {MANIFEST}",
                                   f"run `edgekd {name} {self.path}` first")
        return steps[name]

    def require(self, artifact: str) -> Path:
        """Path of an artifact an earlier step must have written."""
        p = self.path / artifact
        if not p.is_file():
            step = PRODUCED_BY.get(artifact, "the earlier step")
            raise StepMissingError(f"{p} is missing: the `{step}` step has not run on this run directory",
                                   f"run `edgekd {step} {self.path}` first")
        return p

    def record(self, name: str, section: dict) -> None:
        """Record a step's options and figures in the manifest (atomically)."""
        manifest = self.manifest
        manifest.setdefault("steps", {})[name] = {**section, "finished": now()}
        write_json(self.path / MANIFEST, manifest)

"""Run directory layout, the manifest that links the steps, and atomic writes.

Every step reads what earlier steps recorded in `manifest.json` and adds its own section, so
`edgekd export RUN` needs no repeated options. Files are written to a temp name and renamed, so an
interrupted command never leaves half a file behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import StepMissingError, UsageError
from ..files import MANIFEST, _flocked, make_dir, now, sha256, write_json

SCHEMA_VERSION = 1

# The step that writes each artifact, and the command that makes it: used for "run X first" hints.
PRODUCED_BY = {
    "student.pt": "distill",
    "eval.npz": "distill",
    "student.onnx": "export",
    "teacher.onnx": "export",
    "student.optimized.onnx": "export",
    "student.ort-basic.onnx": "export",
    "student.ort-extended.onnx": "export",
    "student.ort-all.onnx": "export",
    "teacher.optimized.onnx": "export",
    "student": "export",        # the app folder of a Hugging Face student (model.onnx, config, tokenizer)
    "student.ort": "export",
    "student.required_operators.config": "export",
    "student.int8.onnx": "quantize",
    "student.int4.onnx": "quantize",
    "student.fp16.onnx": "quantize",
    "bench.json": "bench",
    "report.md": "bench",
    "quality_latency.png": "bench",
    "latency.png": "bench",
    "predicted.png": "bench",
    "report.html": "bench",
    "devices": "bench",         # bench --on: each device's bench.json and report
}
LATER = {"distill": ["export", "quantize", "bench"], "export": ["quantize", "bench"], "quantize": ["bench"],
         "bench": []}


class RunDir:
    """A run directory: `manifest.json` plus the artifacts each step wrote."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @classmethod
    def create(cls, path: str | os.PathLike) -> RunDir:
        run = cls(make_dir(path))
        if not (run.path / MANIFEST).exists():
            write_json(run.path / MANIFEST, {"schema_version": SCHEMA_VERSION, "created": now(), "steps": {}})
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
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
            data = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise UsageError(f"{self.path / MANIFEST} is not valid JSON (line {e.lineno}: {e.msg})",
                             "restore it or rerun `edgekd distill`") from None
        except (UnicodeDecodeError, RecursionError):
            raise UsageError(f"{self.path / MANIFEST} is not UTF-8 JSON", "restore it or rerun `edgekd distill`") \
                from None
        if not isinstance(data, dict) or not isinstance(data.get("steps", {}), dict):
            raise UsageError(f"{self.path / MANIFEST} is not an edgekd manifest (no `steps` object)",
                             "restore it or rerun `edgekd distill`")
        return data

    def rel(self, path: str | os.PathLike) -> str:
        """A path as the manifest records it: relative to the run when inside it (so the run can be moved),
        absolute otherwise."""
        p = Path(path).resolve()
        try:
            return str(p.relative_to(self.path.resolve()))
        except ValueError:
            return str(p)

    def resolve(self, recorded: str) -> Path:
        p = Path(recorded)
        return p if p.is_absolute() else self.path / p

    def verify(self, artifact: str, step: str) -> Path:
        """An artifact an earlier step wrote, checked against the sha256 that step recorded: a file changed
        behind the manifest's back is an error (the figures recorded for it would be wrong)."""
        path = self.require(artifact)
        want = (self.manifest.get("steps", {}).get(step, {}).get("sha256") or {}).get(artifact)
        if want and sha256(path) != want:
            raise UsageError(f"{path} changed after `edgekd {step}` wrote it (sha256 differs from {MANIFEST})",
                             f"rerun `edgekd {step} {self.path}` to make it again")
        return path

    def invalidate(self, step: str, force: bool) -> list[str]:
        """Before `step` runs again: the later steps' outputs belong to the old artifacts. Refused without
        `force`; with it, their files and manifest sections are removed. Returns what was removed."""
        later = [s for s in LATER.get(step, []) if s in self.manifest.get("steps", {})]
        files = [f for f, s in PRODUCED_BY.items() if s in later and (self.path / f).exists()]
        if not later and not files:
            return []
        if not force:
            raise UsageError(f"{self.path} already has `{', '.join(later) or files[0]}` from the {step} "
                             "being replaced; their results would describe the old model",
                             "pass --force to remove them, or --out a new directory")
        for f in files:
            p = self.path / f
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        with self.lock():
            manifest = self.manifest
            for s in later:
                manifest["steps"].pop(s, None)
            write_json(self.path / MANIFEST, manifest)
        return later + files

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock around a manifest read-modify-write: concurrent steps lose no record."""
        with _flocked(self.path / ".manifest.lock"):
            yield

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
        """Record a step's options and figures in the manifest (atomically, under the lock)."""
        with self.lock():
            manifest = self.manifest
            manifest.setdefault("steps", {})[name] = {**section, "finished": now()}
            write_json(self.path / MANIFEST, manifest)

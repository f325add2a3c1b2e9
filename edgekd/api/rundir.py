"""Run directory layout, the manifest that links the steps, and atomic writes.

Every step reads what earlier steps recorded in `manifest.json` and adds its own section, so
`edgekd export RUN` needs no repeated options. Files are written to a temp name and renamed, so an
interrupted command never leaves half a file behind.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import EdgekdError, StepMissingError, UsageError

MANIFEST = "manifest.json"
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


def fs_error(e: OSError, path) -> EdgekdError:
    """A file-system failure as one line naming the file and what to do."""
    why = {errno.ENOSPC: ("the disk is full", "free space, then rerun"),
           errno.EROFS: ("the file system is read-only", "write to a writable directory (--out / --output)"),
           errno.EACCES: ("permission denied", "write to a directory you own"),
           errno.EPERM: ("the operation is not permitted (an immutable file?)", "check the file's attributes"),
           errno.EISDIR: ("it is a directory", "pass a file path"),
           errno.ENOTDIR: ("a part of the path is not a directory", "check the path")}
    what, hint = why.get(e.errno, (e.strerror or type(e).__name__, "check the path and the disk"))
    verb = "read" if e.errno == errno.ENOENT else "write"
    return EdgekdError(f"cannot {verb} {path}: {what}", hint)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path next to `final`; rename it over `final` only if the block succeeds."""
    final = Path(final)
    if final.is_dir():
        raise UsageError(f"cannot write {final}: it is a directory", "pass a file path")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(final.parent, f".{final.name}.")
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp", dir=final.parent)
        os.close(fd)
    except OSError as e:
        raise fs_error(e, final) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644 & ~_umask())
        os.replace(tmp_path, final)
    except OSError as e:
        raise fs_error(e, final) from None
    except Exception:  # a writer that reports a full disk in its own words (torch.save: "unexpected pos")
        if _disk_full(final.parent):
            raise fs_error(OSError(errno.ENOSPC, "No space left on device"), final) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def clean_stale(folder: Path, prefix: str) -> None:
    """Remove temp files and folders a killed writer left in `folder`: named `PREFIX<pid>.` or `PREFIX<pid>-`,
    they carry the writer's pid, and a writer that no longer runs will not finish them."""
    for tmp in folder.glob(f"{glob.escape(prefix)}*"):
        pid = tmp.name[len(prefix):].replace("-", ".").split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


LOCK = ".edgekd.lock"


@contextlib.contextmanager
def step_lock(target: str | os.PathLike, step: str, create: bool = False) -> Iterator[None]:
    """One writing step per run directory at a time. A second is refused, naming the holder (its step, pid and
    start); the lock is an flock, so the OS drops a killed holder's lock and the next step takes the file over.
    A plain file target (an .onnx) needs none; `create` makes the run directory (distill's --out)."""
    path = make_dir(target) if create else Path(target)
    if not create and not (path / MANIFEST).is_file():
        yield
        return
    with _flocked(path / LOCK, blocking=False) as fh:
        if fh is None:  # not POSIX: no lock
            yield
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"`edgekd {step}` (pid {os.getpid()}, since {now()})\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()


@contextlib.contextmanager
def _flocked(path: Path, blocking: bool = True):
    """An exclusive flock on `path` for the block (the open file, or None where there is no fcntl). Not
    blocking: a held lock is a UsageError naming its holder, as the file's text says."""
    try:
        import fcntl
    except ImportError:
        yield None
        return
    if path.is_symlink():  # a received run's lock pointing elsewhere must not get that file truncated
        raise UsageError(f"{path} is a symbolic link; a run directory's lock must be a plain file",
                         f"remove it (rm {path}) if you trust the run, then rerun")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o644)
        fh = os.fdopen(fd, "a+")
    except OSError as e:
        raise fs_error(e, path) from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another edgekd step"
            raise UsageError(f"{path.parent} is in use by {holder}", "wait for it to finish, or use another run "
                             "directory") from None
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def make_dir(path: str | os.PathLike) -> Path:
    """A run directory made if missing (parents too); a file in its place or an unwritable parent is one line."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is a file", "pass a directory for the run")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise fs_error(e, path) from None
    return path


def _disk_full(folder: Path, margin: int = 1 << 20) -> bool:
    import shutil

    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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

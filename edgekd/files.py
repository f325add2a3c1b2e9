"""The ground floor for files: atomic writes, step locks, stale-temp cleanup, sha256 and file-system errors
in one line. Every layer writes through these (kd, latency, deploy, api), so none needs to reach up into the
run-directory code for them.
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
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import EdgekdError, UsageError

MANIFEST = "manifest.json"  # a run directory's record of its steps (api.rundir reads and writes it)


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


def regular_or_dir(path: str | os.PathLike, role: str) -> None:
    """Refuse a FIFO, socket or device before opening it: reading one blocks forever (a FIFO nobody writes) or
    never ends (/dev/zero fills memory)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return  # missing: each reader names it
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else
                "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode) else
                "not a regular file")
        raise UsageError(f"{role} {path} is {kind}, not a file or a folder",
                         "copy what it holds to a regular file and pass that")


def read_text(path: str | os.PathLike, fix: str) -> str:
    """A UTF-8 text file someone handed us; other bytes (latin-1, a binary file) are one line naming the byte."""
    p = Path(path)
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise UsageError(f"{p} is not UTF-8 text (line {line}, byte {e.start} is {raw[e.start:e.start + 1]!r})",
                         fix) from None


def read_json(path: str | os.PathLike, expect: type | tuple[type, ...] = dict, what: str = "a JSON object",
              fix: str = "restore the file") -> Any:
    """A JSON file someone handed us, checked where it is read: bytes that are not UTF-8, a syntax error,
    nesting too deep for the parser (a RecursionError otherwise) and a top level of the wrong shape (a list where
    an object belongs) each become one line naming the file; a missing file stays an OSError (named upstream)."""
    p = Path(path)
    text = read_text(p, fix)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{p} is not valid JSON (line {e.lineno}: {e.msg})", fix) from None
    except RecursionError:
        raise UsageError(f"{p} nests deeper than any real file (a corrupt or hostile JSON)", fix) from None
    if not isinstance(data, expect):
        raise UsageError(f"{p} holds a JSON {_json_type(data)}, expected {what}", fix)
    return data


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

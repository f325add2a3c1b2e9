"""A run directory is untrusted input: its manifest and student.pt name code (`teacher.py:build`, a TorchScript
file, `--arch net.py:Net`, a `file.py:factory` student) that later steps would import. Opening a directory someone
sent you must not run that code without your say-so.

`distill` records, for each spec, the files it executes and their sha256, signed with a key only this user has
(`~/.config/edgekd/trust.key`, or `$EDGEKD_CONFIG_DIR`). A later step imports the code only when the files are
unchanged and the signature is this user's (a run you made yourself), or when you pass `--trust-run` (a run you
received: the files must still match what its manifest recorded). A file changed since distill is refused either
way.
"""
from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import secrets
from pathlib import Path

from ..errors import UsageError
from .rundir import sha256


class UntrustedCode(UsageError):
    """The run names code that may not run without the user's say-so (exit 2)."""


def _key_path() -> Path:
    base = os.environ.get("EDGEKD_CONFIG_DIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "edgekd")
    return Path(base) / "trust.key"


def _key(create: bool) -> bytes | None:
    """This user's signing key (made on first use, mode 0600); None when it cannot be read or made."""
    path = _key_path()
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        if not create:
            return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        return None


def code_files(spec: str | None) -> dict[str, str]:
    """{file: sha256} of what loading `spec` would execute: a `file.py:x` or a `module:x` that resolves to a file
    outside edgekd and the standard library, or a TorchScript file. Built-in specs (hf:, edgekd's own) run none."""
    if not spec or spec.startswith("hf:"):
        return {}
    target, sep, _ = spec.rpartition(":")
    if not sep:  # a TorchScript or state-dict file
        p = Path(spec)
        return {str(p.resolve()): sha256(p)} if p.is_file() and p.suffix in (".pt", ".ts", ".pth", ".jit") else {}
    if target.endswith(".py"):
        p = Path(target)
        return {str(p.resolve()): sha256(p)} if p.is_file() else {str(p.resolve()): "missing"}
    if target.split(".")[0] == "edgekd":
        return {}
    try:
        found = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return {}
    origin = getattr(found, "origin", None)
    if not origin or not os.path.isfile(origin) or "site-packages" in origin or "/lib/python" in origin:
        return {}  # an installed package: code already on this machine, not something the run brought
    return {str(Path(origin).resolve()): sha256(origin)}


def teacher_specs(spec: str, arch: str | None) -> tuple[str | None, ...]:
    """The specs of a teacher that execute code: with --arch the weights are a state dict (loaded with
    weights_only) and only the architecture is code; without, the spec itself (a factory or TorchScript)."""
    return (arch,) if arch else (spec,)


def _sign(files: dict[str, str], key: bytes) -> str:
    return hmac.new(key, json.dumps(files, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def stamp(*specs: str | None) -> dict | None:
    """What distill records for these specs: the files and their hashes, signed with this user's key."""
    files = {k: v for s in specs for k, v in code_files(s).items()}
    if not files:
        return None
    key = _key(create=True)
    return {"files": files, "signature": _sign(files, key) if key else None}


def check(recorded: dict | None, *specs: str | None, trust_run: bool = False, where: str = "the run") -> None:
    """Refuse (UntrustedCode) to import the code `specs` name unless it is unchanged and either signed by this
    user or `trust_run`."""
    files = {k: v for s in specs for k, v in code_files(s).items()}
    if not files:
        return
    names = ", ".join(Path(f).name for f in files)
    if recorded and recorded.get("files") and recorded["files"] != files:
        changed = [Path(f).name for f in files if recorded["files"].get(f) != files[f]]
        raise UntrustedCode(f"{where} names code that changed since distill recorded it ({', '.join(changed)})",
                            "rerun `edgekd distill` with the code you mean")
    if trust_run:
        return
    key = _key(create=False)
    if recorded and key and recorded.get("signature") and hmac.compare_digest(recorded["signature"],
                                                                              _sign(files, key)):
        return
    raise UntrustedCode(f"{where} names code that this user's edgekd did not record ({names}); a run directory "
                        "is not allowed to run code without your say-so",
                        "if you trust who made it, pass --trust-run")

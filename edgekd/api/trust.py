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
from ..files import sha256


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
        return {str(p.resolve()): sha256(p)} if p.is_file() else {}  # any suffix, any case: the loader takes them
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


# the fields of a teacher record that decide what loading it runs: the signature covers them all, so an
# edited manifest (`"arch": "os:abort"`, a changed kind, a `trust_pickle` it sets itself) is refused
SIGNED_FIELDS = ("spec", "arch", "kind", "task", "output", "trust_pickle")


def signed_fields(rec: dict) -> dict:
    return {k: rec.get(k) for k in SIGNED_FIELDS}


def _payload(files: dict[str, str], specs: tuple, extra: dict | None) -> dict:
    return {"files": files, "specs": list(specs), "record": extra or {}}


def _sign(payload: dict, key: bytes) -> str:
    return hmac.new(key, json.dumps(payload, sort_keys=True, default=str).encode(), hashlib.sha256).hexdigest()


def _runs_nothing(specs: tuple, extra: dict | None) -> bool:
    """Specs whose loading runs no code a run could bring: none, a Hugging Face folder (safetensors or
    weights_only), edgekd's own architectures — and never a record that asks to unpickle."""
    if (extra or {}).get("trust_pickle"):
        return False
    for spec in specs:
        if not spec or spec.startswith("hf:"):
            continue
        target, sep, _ = spec.rpartition(":")
        if sep and not target.endswith(".py") and target.split(".")[0] == "edgekd":
            continue
        return False
    return True


def stamp(*specs: str | None, extra: dict | None = None) -> dict:
    """What distill records for these specs: the files they execute with their hashes, and a signature with
    this user's key over those, the specs themselves and `extra` (the rest of the record that decides what
    loading runs)."""
    files = {k: v for s in specs for k, v in code_files(s).items()}
    key = _key(create=True)
    return {"files": files, "signature": _sign(_payload(files, specs, extra), key) if key else None}


def check(recorded: dict | None, *specs: str | None, extra: dict | None = None, trust_run: bool = False,
          where: str = "the run") -> None:
    """Refuse (UntrustedCode) to load what `specs` name unless the record is the one this user's distill signed
    (files, specs and `extra` unchanged), or `trust_run` (then the files must still be what was recorded)."""
    files = {k: v for s in specs for k, v in code_files(s).items()}
    names = ", ".join(Path(f).name for f in files) or ", ".join(str(s) for s in specs if s)
    if recorded and recorded.get("files") and files and recorded["files"] != files:
        changed = [Path(f).name for f in files if recorded["files"].get(f) != files[f]]
        raise UntrustedCode(f"{where} names code that changed since distill recorded it ({', '.join(changed)})",
                            "rerun `edgekd distill` with the code you mean")
    if trust_run:
        return
    key = _key(create=False)
    signature = (recorded or {}).get("signature")
    if key and signature and hmac.compare_digest(signature, _sign(_payload(files, specs, extra), key)):
        return
    if signature is None and _runs_nothing(specs, extra) and not files:
        return  # an unsigned record (no key could be made) of something that runs no code
    raise UntrustedCode(f"{where} names code that this user's edgekd did not record ({names}), or its record "
                        "changed since; a run directory is not allowed to run code without your say-so",
                        "if you trust who made it, pass --trust-run")

"""Load a teacher from a SPEC: a Python entrypoint, a TorchScript file, or a state dict plus `--arch`.

Nothing is downloaded: every teacher comes from a local file or an importable module.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..registry import Registry
from .hf import is_hf

TORCHSCRIPT_SUFFIXES = {".pt", ".pth", ".ts", ".torchscript", ".jit"}


def resolve_entrypoint(spec: str, what: str = "teacher") -> Callable[..., Any]:
    """`path/to/file.py:name` or `package.module:name` -> the named callable."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise UsageError(f"{what} spec {spec!r} is not `file.py:factory` or `package.module:factory`",
                         "name the function after a colon, e.g. models.py:build")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"{what} file {path} does not exist", f"check the path in {spec!r}")
        mod_name = f"_edgekd_user_{path.stem}_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[mod_name]
            raise UsageError(f"importing {path} failed: {type(e).__name__}: {e}",
                             "run `python " + str(path) + "` to see the error") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise UsageError(f"cannot import module {target!r} from {what} spec {spec!r}: {e}",
                             "install the package, or use a file path: path/to/file.py:factory") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
        raise UsageError(f"{target} has no callable {attr!r} (callables there: {', '.join(names[:10]) or 'none'})",
                         f"fix the name after the colon in {spec!r}")
    return fn


def _as_module(obj: Any, spec: str):
    import torch

    if not isinstance(obj, torch.nn.Module):
        raise UsageError(f"{spec} returned {type(obj).__name__}, not a torch.nn.Module",
                         "make the factory return the model with its weights loaded")
    return obj


@dataclass(frozen=True)
class Loader:
    """A way to load a teacher: `matches(spec, arch)` says whether it applies, `load(spec, arch)` returns
    (model in eval mode, a JSON-able record of how it was loaded). The first loader that matches wins."""

    name: str
    matches: Callable[[str, str | None], bool]
    load: Callable[..., tuple[Any, dict]]  # (spec, arch, **hints such as task=) -> (model, record)


LOADERS: Registry[Loader] = Registry("teacher loader")


def register(loader: Loader, first: bool = False) -> Loader:
    """Add a teacher loader (users may add their own; `first` puts it before the built-in ones)."""
    return LOADERS.register(loader, first)


def load_teacher(spec: str, arch: str | None = None, **hints) -> tuple[Any, dict]:
    """Return (teacher in eval mode, a JSON-able record of how it was loaded), by the first matching loader.
    `hints` (e.g. task="embedding") go to loaders that take them."""
    for loader in LOADERS.values():
        if loader.matches(spec, arch):
            return loader.load(spec, arch, **hints)
    raise UsageError(f"teacher {spec!r} does not exist",
                     "pass file.py:factory, package.module:factory, a TorchScript .pt file or hf:FOLDER")


def _torchscript_teacher(spec: str, _arch: str | None, trust_pickle: bool = False, **_hints) -> tuple[Any, dict]:
    """A TorchScript file; a whole pickled model (torch.save(model)) only with `trust_pickle`: unpickling runs
    whatever code the file names."""
    import torch

    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"teacher file {path} does not exist", "check the path passed to --teacher")
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        if trust_pickle:
            return _pickled_teacher(path, spec)
        raise UsageError(f"{path} is not a TorchScript file ({type(e).__name__})",
                         "for a state dict pass --arch file.py:Net too; a whole pickled model loads with "
                         "--trust-pickle (it runs the code the file names); "
                         "or save with torch.jit.script(model).save(path)") from None
    return model.eval(), {"kind": "torchscript", "spec": spec}


def _pickled_teacher(path: Path, spec: str) -> tuple[Any, dict]:
    import torch

    try:
        model = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:
        raise UsageError(f"{path} cannot be unpickled ({type(e).__name__}: {str(e)[:120]})",
                         "save the model with torch.jit.script(model).save(path), or as a state dict") from None
    return _as_module(model, spec).eval(), {"kind": "pickle", "spec": spec, "trust_pickle": True}


def _entrypoint_teacher(spec: str, _arch: str | None, **_hints) -> tuple[Any, dict]:
    fn = resolve_entrypoint(spec)
    try:
        model = fn()
    except Exception as e:
        raise UsageError(f"calling {spec} failed: {type(e).__name__}: {e}",
                         "the factory must take no arguments and return an nn.Module") from None
    return _as_module(model, spec).eval(), {"kind": "entrypoint", "spec": spec}


def _state_dict_teacher(spec: str, arch: str, **_hints) -> tuple[Any, dict]:
    import torch

    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"teacher weights {path} do not exist", "check the path passed to --teacher")
    fn = resolve_entrypoint(arch, what="architecture")
    try:
        model = fn()
    except Exception as e:
        raise UsageError(f"calling {arch} failed: {type(e).__name__}: {e}",
                         "--arch must name a class or factory that takes no arguments") from None
    model = _as_module(model, arch)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise UsageError(f"{path} cannot be loaded with weights_only=True ({type(e).__name__})",
                         "save it with torch.save(model.state_dict(), path)") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UsageError(f"weights in {path} do not fit {arch}: {first}",
                         "pass the --arch the weights were trained with") from None
    return model.eval(), {"kind": "state_dict", "spec": str(path), "arch": arch}


def _hf_teacher(spec: str, _arch: str | None, task: str | None = None, **_hints) -> tuple[Any, dict]:
    from . import hf

    return hf.load(spec, task)  # local files only; the tokenizer comes from the same folder


register(Loader("hf", lambda spec, arch: is_hf(spec), _hf_teacher))
register(Loader("state_dict", lambda spec, arch: arch is not None, _state_dict_teacher))
register(Loader("torchscript", lambda spec, arch: Path(spec).suffix.lower() in TORCHSCRIPT_SUFFIXES,
                _torchscript_teacher))
register(Loader("entrypoint", lambda spec, arch: ":" in spec or Path(spec).exists(), _entrypoint_teacher))

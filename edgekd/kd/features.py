"""Feature taps: forward hooks registered by module name, and the learned projections that map student
features onto the teacher's shape (training-only: they are never exported)."""
from __future__ import annotations

import difflib

import torch
import torch.nn as nn

from ..errors import UsageError


def last_linear(model: nn.Module) -> str | None:
    """Name of the model's last nn.Linear (its input is the penultimate embedding)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def resolve(model: nn.Module, name: str, role: str) -> tuple[nn.Module, bool]:
    """`layer3` (the module's output) or `fc@in` (its input) -> (module, takes_input)."""
    base, _, where = name.partition("@")
    if where not in ("", "in", "out"):
        raise UsageError(f"feature {name!r}: only @in or @out may follow a module name", "e.g. classifier.4@in")
    modules = dict(model.named_modules())
    if base not in modules or base == "":
        names = [n for n in modules if n]
        close = difflib.get_close_matches(base, names, n=5, cutoff=0.3) or names[:8]
        raise UsageError(f"the {role} has no module {base!r} (nearest: {', '.join(close)})",
                         f"use one of the {role}'s module names in --feature-map TEACHER:STUDENT")
    return modules[base], where == "in"


class FeatureTap:
    """Records named modules' outputs (or inputs) on every forward pass."""

    def __init__(self, model: nn.Module, names: list[str], role: str) -> None:
        if names and isinstance(model, torch.jit.ScriptModule):
            raise UsageError(f"the {role} is a TorchScript module: forward hooks need an nn.Module",
                             "pass the teacher as file.py:factory or a state dict with --arch")
        self.names = names
        self.values: list[torch.Tensor | None] = [None] * len(names)
        self._handles = []
        for i, name in enumerate(names):
            module, takes_input = resolve(model, name, role)
            if takes_input:
                self._handles.append(module.register_forward_pre_hook(self._pre(i)))
            else:
                self._handles.append(module.register_forward_hook(self._post(i)))

    def _pre(self, i):
        def hook(_module, args):
            self.values[i] = args[0]
        return hook

    def _post(self, i):
        def hook(_module, _args, output):
            self.values[i] = output[0] if isinstance(output, tuple) else output
        return hook

    def take(self) -> list[torch.Tensor]:
        out, self.values = self.values, [None] * len(self.names)
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def projection(student_shape: tuple, teacher_shape: tuple, pair: str) -> nn.Module:
    """1x1 conv (plus pooling to the teacher's spatial size) for maps, linear for vectors and sequences."""
    if tuple(student_shape) == tuple(teacher_shape):
        return nn.Identity()
    if len(student_shape) == 4 and len(teacher_shape) == 4:
        layers: list[nn.Module] = [nn.Conv2d(student_shape[1], teacher_shape[1], 1, bias=False)]
        if tuple(student_shape[2:]) != tuple(teacher_shape[2:]):
            layers.append(nn.AdaptiveAvgPool2d(tuple(teacher_shape[2:])))
        return nn.Sequential(*layers)
    if len(student_shape) == len(teacher_shape) and len(student_shape) in (2, 3) and \
            student_shape[:-1] == teacher_shape[:-1]:
        return nn.Linear(student_shape[-1], teacher_shape[-1], bias=False)
    raise UsageError(f"feature pair {pair}: student shape {tuple(student_shape[1:])} cannot be projected onto "
                     f"teacher shape {tuple(teacher_shape[1:])}",
                     "pair layers of the same kind (conv map with conv map, vector with vector)")

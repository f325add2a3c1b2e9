"""PyTorch models as the rest of edgekd sees them: named inputs in, one chosen output out.

A user's model may take several inputs (positional or keyword: `input_ids`, `attention_mask`) of any dtype
and return a tensor, a tuple, a dict or a Hugging Face `ModelOutput`. `Adapted` wraps it so that it takes its
inputs positionally, in the data's order, and returns the one output being distilled (`--output NAME`;
default `logits`, else the first), which is what training, export and scoring need.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn as nn

from ..data import Inputs, n_samples, take
from ..errors import UsageError


def named_outputs(raw) -> dict[str, torch.Tensor]:
    """A model's return value as {name: tensor}: a tensor is `logits` (2-D) or `output`; a tuple's items are
    `output_0`, `output_1`, ...; a dict or ModelOutput keeps its keys (None values dropped)."""
    if isinstance(raw, torch.Tensor):
        return {"logits" if raw.ndim == 2 else "output": raw}
    if isinstance(raw, dict) or hasattr(raw, "to_tuple") and hasattr(raw, "keys"):
        return {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if isinstance(raw, (tuple, list)):
        return {f"output_{i}": v for i, v in enumerate(raw) if isinstance(v, torch.Tensor)}
    raise UsageError(f"the model returned {type(raw).__name__}; expected a tensor, a tuple, a dict or a ModelOutput",
                     "make forward() return tensors")


def choose(outputs: dict[str, torch.Tensor], name: str | None, role: str) -> str:
    """The output to distil: `name`, else `logits`, else the first."""
    if name is not None:
        if name not in outputs:
            raise UsageError(f"--output {name!r} is not an output of the {role} (outputs: {', '.join(outputs)})",
                             "pass one of those names to --output")
        return name
    if not outputs:
        raise UsageError(f"the {role} returned no tensors", "make forward() return its logits")
    return "logits" if "logits" in outputs else next(iter(outputs))


class Adapted(nn.Module):
    """`model` taking `input_names` positionally (passed on by keyword when its forward names them, else
    in order), with `constants` added, returning only output `output` (None: the output as it is)."""

    def __init__(self, model: nn.Module, input_names: list[str], output: str | None = None,
                 constants: dict[str, np.ndarray] | None = None) -> None:
        super().__init__()
        self.inner = model
        self.input_names = list(input_names)
        self.output = output
        self.constants = {k: torch.from_numpy(np.asarray(v)) for k, v in (constants or {}).items()}
        try:
            params = inspect.signature(model.forward).parameters
            self.by_keyword = all(n in params for n in [*self.input_names, *self.constants])
        except (TypeError, ValueError):  # TorchScript and builtins may hide their signature
            self.by_keyword = False

    def forward(self, *args):
        if self.by_keyword:
            raw = self.inner(**dict(zip(self.input_names, args)), **self.constants)
        else:
            raw = self.inner(*args, *self.constants.values())
        return raw if self.output is None else named_outputs(raw)[self.output]


def unwrap(model: nn.Module) -> nn.Module:
    """The user's own module (whose names feature taps and state dicts use)."""
    return model.inner if isinstance(model, Adapted) else model


def as_args(x, device=None) -> tuple[torch.Tensor, ...]:
    """One batch of inputs (an array or {name: array}, numpy or torch) as positional tensors."""
    values = list(x.values()) if isinstance(x, dict) else [x]
    out = tuple(v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v)) for v in values)
    return tuple(t.to(device) for t in out) if device is not None else out


def call(model: nn.Module, x):
    return model(*as_args(x))


@torch.inference_mode()
def predict(model: nn.Module, x: Inputs, batch_size: int = 512) -> np.ndarray:
    """The model's output (eval mode, on CPU) over every sample of `x`, in batches."""
    model.eval()
    n = n_samples(x)
    outs = [call(model, take(x, slice(i, i + batch_size))).float().numpy() for i in range(0, n, batch_size)]
    return np.concatenate(outs)

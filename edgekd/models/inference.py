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

from ..data import Dataset, Inputs, n_samples, take
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
    in order), with `constants` added, returning only output `output` (None: the output as it is), through
    `head` ("softmax" or "sigmoid": a student trained in logits that deploys as its teacher, in probabilities)."""
    def __init__(self, model: nn.Module, input_names: list[str], output: str | None = None,
                 constants: dict[str, np.ndarray] | None = None, head: str | None = None) -> None:
        super().__init__()
        self.inner = model
        self.head = head
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
        out = raw if self.output is None else named_outputs(raw)[self.output]
        if self.head == "softmax":
            return torch.softmax(out, dim=-1)
        return torch.sigmoid(out) if self.head == "sigmoid" else out


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


def mask_index(x) -> int | None:
    """Position of `attention_mask` among the named inputs (padded token data), else None."""
    if not isinstance(x, dict) or "attention_mask" not in x:
        return None
    return list(x).index("attention_mask")


def trim_padding(xb: tuple, mask_at: int | None) -> tuple:
    """Dynamic padding: cut every (B, L) input of a batch of padded token data to the batch's longest text."""
    if mask_at is None:
        return xb
    mask = xb[mask_at]
    full = mask.shape[1]
    width = max(1, int(mask.sum(1).max()))
    if width == full:
        return xb
    return tuple(t[:, :width] if t.ndim == 2 and t.shape[1] == full else t for t in xb)


@torch.inference_mode()
def predict(model: nn.Module, x: Inputs, batch_size: int = 512) -> np.ndarray:
    """The model's output (eval mode, on CPU) over every sample of `x`, in batches (padded token data cut
    to each batch's longest text)."""
    model.eval()
    n = n_samples(x)
    at = mask_index(x)
    outs = []
    for i in range(0, n, batch_size):
        args = as_args(take(x, slice(i, i + batch_size)))
        out = model(*trim_padding(args, at)) if at is not None else model(*args)
        if at is not None and out.ndim >= 3:  # one output per token: keep every position, as ONNX returns it
            at, out = None, model(*args)
        outs.append(out.float().numpy())
    return np.concatenate(outs)


# ---------------------------------------------------------------- models meet data

def adapt(model, input_names: list[str] | None, output: str | None, constants: dict, head: str | None = None):
    """Wrap a model in Adapted only when it needs it (named inputs, constants, a chosen output or a head)."""
    if input_names is None and output is None and not constants and head is None:
        return model
    return Adapted(model, input_names or ["input"], output, constants, head)


def fit_teacher(teacher, ds: Dataset, output: str | None):
    """Run the teacher on two samples, adapting it to the data: named inputs, constants and a chosen output
    (tuple, dict or ModelOutput results). Integer data a float model cannot take is cast to float32 (a
    note says so). Returns (the adapted teacher, its output on the samples, the output's name)."""
    names = ds.input_names
    x = take(ds.x_train, slice(0, 2))
    raw_model = teacher
    model = adapt(teacher, names, None, ds.constants)
    try:
        with torch.inference_mode():
            raw = call(model, x)
    except Exception as e:
        cast = _cast_floats(ds)
        if cast is None:
            raise _misfit(ds, e) from None
        try:
            with torch.inference_mode():
                raw = call(model, take(ds.x_train, slice(0, 2)))
        except Exception as e2:
            raise _misfit(ds, e2) from None
        ds.notes.append(cast)
    outs = named_outputs(raw)
    chosen = choose(outs, output, "teacher")
    out = outs[chosen]
    per_token = out.ndim == 3 and getattr(raw_model, "task", "") == "token-classification"
    if out.ndim != 2 and not per_token:
        raise UsageError(f"the teacher's output {chosen!r} has shape {tuple(out.shape)}; distillation needs "
                         "class logits of shape (N, classes)", "pick the logits with --output NAME, or wrap the "
                         "teacher so forward() returns them (outputs: " + ", ".join(
                             f"{k} {tuple(v.shape)}" for k, v in outs.items()) + ")")
    if ds.num_classes and out.shape[-1] < ds.num_classes:
        raise UsageError(f"the teacher has {out.shape[-1]} outputs but the data has labels up to "
                         f"{ds.num_classes - 1} ({ds.num_classes} classes)",
                         "use the teacher trained on this label set")
    need_output = not isinstance(raw, torch.Tensor) or output is not None
    adapted = adapt(raw_model, names, chosen if need_output else None, ds.constants)
    return adapted, out.float().numpy(), chosen if need_output else None  # (N, classes) or (N, seq, classes)


def _cast_floats(ds: Dataset) -> str | None:
    """Cast a single integer input to float32 (uint8 images, integer features); None when there is none."""
    if ds.input_names or np.issubdtype(ds.x_train.dtype, np.floating):
        return None
    dtype = ds.x_train.dtype
    for name in ("x_train", "x_test", "x_val"):
        if getattr(ds, name) is not None:
            setattr(ds, name, getattr(ds, name).astype(np.float32))
    return f"inputs of dtype {dtype} were cast to float32: the teacher takes floats"


def _misfit(ds: Dataset, e: Exception) -> UsageError:
    reason = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
    if ds.input_names:
        what = ", ".join(f"{k} {v.dtype} (N, {', '.join(map(str, v.shape[1:]))})" for k, v in ds.x_train.items())
        return UsageError(f"the teacher cannot take the data's inputs {what}: {reason}",
                          "name the .npz arrays after the teacher's forward() arguments, in its order")
    return UsageError(f"the teacher cannot take the data's inputs of shape (N, {', '.join(map(str, ds.input_shape))}): "
                      f"{reason}", "pass data shaped like the teacher's training inputs")


def single_input(ds: Dataset, student: str) -> None:
    """Built-in student families take one input array: refuse named inputs and constants clearly."""
    if ds.input_names:
        names = [*ds.input_names, *ds.constants]
        raise UsageError(f"the built-in student families take one input, but the data has {len(names)} "
                         f"({', '.join(names)}); cannot use --student {student}",
                         "pass --student file.py:factory returning a model that takes those inputs")


def student_output(model, ds: Dataset) -> str | None:
    """The output a user's student returns for distillation (None: a plain tensor)."""
    if not ds.input_names:
        return None
    try:
        with torch.inference_mode():
            raw = Adapted(model, ds.input_names, None, ds.constants).eval()(*as_args(take(ds.x_train, slice(0, 2))))
    except Exception as e:
        raise UsageError(f"the student cannot take the data's inputs ({', '.join(ds.input_names)}): "
                         f"{type(e).__name__}", "make the student's forward() take the teacher's inputs") from None
    return None if isinstance(raw, torch.Tensor) else choose(named_outputs(raw), None, "student")


def check_student_fits(student, ds: Dataset, teacher_outputs: int) -> None:
    try:
        with torch.inference_mode():
            out = call(student.eval(), take(ds.x_train, slice(0, 2)))
    except Exception as e:
        raise UsageError(f"the student cannot take inputs of shape (N, {', '.join(map(str, ds.input_shape))}): "
                         f"{type(e).__name__}", "pick a student family that fits the data") from None
    if out.ndim != 2 or out.shape[1] != teacher_outputs:
        raise UsageError(f"the student outputs {tuple(out.shape[1:])} values per sample but the teacher outputs "
                         f"{teacher_outputs}", "make both models predict the same classes")

"""Students cut from the teacher itself: structural channel pruning with Torch-Pruning (DepGraph), which follows
the coupled channels of residual adds, concats, depthwise convs and LSTMs through any traceable `nn.Module`.

`--student prune[:ratio=0.5,importance=l2,rounding=8,global=0,steps=1]`: the student is the teacher with `ratio`
of its channels removed (the least important by the weights' L2 / L1 norm, or BatchNorm scale), the kept ones
keeping the teacher's weights; then it is distilled like any student. Layers that produce the model's outputs
keep their output channels (a classifier keeps its classes, a detector its boxes and scores). `student.pt`
records only the sizes that changed (`structure`: module -> attribute -> value), so export and bench rebuild
the student from the teacher's code without pruning it again. `steps=N` cuts in N steps with distillation
between them (`prune(between=...)`).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..errors import UsageError

PREFIX = "prune"
OTHER_STUDENTS = "use a built-in family (--student mobilenet, resnet, mlp) or your own --student file.py:factory"
DEFAULTS: dict[str, Any] = {"ratio": 0.5, "importance": "l2", "rounding": 8, "global": 0, "steps": 1}
IMPORTANCE = ("l2", "l1", "bn")
# int attributes that carry a layer's size: what pruning changes and a rebuild must set again
SIZE_ATTRS = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features",
              "normalized_shape", "hidden_size", "input_size", "embed_dim", "num_heads", "head_dim", "kdim", "vdim")


def is_prune(spec: str | None) -> bool:
    return bool(spec) and spec.partition(":")[0] == PREFIX


def parse(spec: str) -> dict[str, Any]:
    """`prune:ratio=0.6,importance=l1` -> the knobs with their defaults, checked."""
    out = dict(DEFAULTS)
    for part in filter(None, (p.strip() for p in spec.partition(":")[2].split(","))):
        key, eq, value = part.partition("=")
        if not eq or key not in DEFAULTS:
            raise UsageError(f"student option {part!r} is not a prune knob (knobs: {', '.join(DEFAULTS)})",
                             "e.g. --student prune:ratio=0.5,importance=l2,rounding=8")
        if key == "importance":
            if value not in IMPORTANCE:
                raise UsageError(f"prune importance {value!r} is not one of {', '.join(IMPORTANCE)}",
                                 "e.g. --student prune:importance=l2")
            out[key] = value
            continue
        try:
            out[key] = float(value) if key == "ratio" else int(value)
        except ValueError:
            raise UsageError(f"student option {key}={value!r} is not a number", f"e.g. prune:{key}="
                             f"{DEFAULTS[key]}") from None
    if not 0.0 < out["ratio"] < 1.0:
        raise UsageError(f"prune ratio {out['ratio']:g} must be between 0 and 1 (the share of channels removed)",
                         "e.g. --student prune:ratio=0.5")
    if out["rounding"] < 1 or out["global"] not in (0, 1):
        raise UsageError("prune rounding must be >= 1 and global 0 or 1", "e.g. prune:rounding=8,global=0")
    if not 1 <= out["steps"] <= 100:
        raise UsageError(f"prune steps must be in [1, 100], got {out['steps']}", "e.g. prune:ratio=0.8,steps=4")
    return out


def output_layers(model, example) -> list:
    """The Conv/Linear layers whose outputs reach the model's outputs through no other such layer: walk the
    autograd graph back from every output and stop at the first weight of a Conv or Linear on each path
    (BatchNorm and LayerNorm weights are walked past: pruning before them would still change the output)."""
    import torch

    owners = {}
    for m in model.modules():
        if isinstance(m, (torch.nn.modules.conv._ConvNd, torch.nn.Linear)):
            owners[id(m.weight)] = m
    with torch.enable_grad():
        outs = model(*example)
    tensors = [t for t in (outs if isinstance(outs, (tuple, list)) else
                           outs.values() if isinstance(outs, dict) else [outs]) if torch.is_tensor(t)]
    found, seen, stack = {}, set(), [t.grad_fn for t in tensors if t.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        nexts = [f for f, _ in fn.next_functions if f is not None]
        hit = [owners[id(f.variable)] for f in nexts if type(f).__name__ == "AccumulateGrad" and
               id(f.variable) in owners]
        if hit:
            for m in hit:
                found[id(m)] = m
            continue
        stack.extend(f for f in nexts if type(f).__name__ != "AccumulateGrad")
    return list(found.values())


def prune(teacher, example: tuple, knobs: dict[str, Any], between: Callable[[Any, int], None] | None = None):
    """A pruned copy of `teacher` (its kept channels keep the teacher's weights) and its structure record.

    With `steps` > 1 the ratio is reached in that many equal steps, `between(student, k)` distilling the
    partly pruned student after each step but the last: the importance of the next cut is then measured on
    weights that have recovered from the previous one (Torch-Pruning's iterative pruning)."""
    import torch

    try:
        import torch_pruning as tp
    except ImportError:
        from ..errors import install_hint

        raise UsageError("--student prune needs torch-pruning", install_hint("train")) from None
    knobs = {**DEFAULTS, **knobs}
    student = copy.deepcopy(teacher).eval()
    importance = {"l2": lambda: tp.importance.MagnitudeImportance(p=2),
                  "l1": lambda: tp.importance.MagnitudeImportance(p=1),
                  "bn": lambda: tp.importance.BNScaleImportance()}[knobs["importance"]]()
    ignored = output_layers(student, example)

    def traced(fn):
        try:
            with torch.enable_grad():  # DepGraph traces through autograd
                return fn()
        except Exception as e:  # data-dependent control flow, an op DepGraph cannot follow
            raise UsageError(f"torch-pruning cannot trace this teacher ({type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0][:160]})", OTHER_STUDENTS) from None
    pruner = traced(lambda: tp.pruner.MetaPruner(
        student, example if len(example) > 1 else example[0], importance=importance, pruning_ratio=knobs["ratio"],
        global_pruning=bool(knobs["global"]), ignored_layers=ignored, round_to=knobs["rounding"],
        iterative_steps=knobs["steps"]))
    for k in range(knobs["steps"]):
        traced(pruner.step)
        if between is not None and k < knobs["steps"] - 1:
            between(student, k)
    sizes = structure(teacher, student)
    if not sizes and knobs["rounding"] > 1:
        raise UsageError(f"pruning {knobs['ratio']:.0%} of the channels with rounding={knobs['rounding']} removed "
                         "none (torch-pruning leaves a layer whole when rounding would take it below one block)",
                         "use a lower ratio (e.g. prune:ratio=0.5) or a smaller rounding (prune:rounding=1)")
    if not sizes:  # every layer makes an output, or feeds ops whose channels DepGraph cannot follow
        layers = [n for n, m in teacher.named_modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d,
                                                                          torch.nn.Linear))]
        raise UsageError(f"torch-pruning found no channel of this teacher it can remove ({len(layers)} conv/linear "
                         "layers: each makes an output, or feeds an op whose channels it cannot follow, such as "
                         "slicing or repeating them)", OTHER_STUDENTS)
    return student, sizes


def structure(teacher, student) -> dict[str, dict[str, Any]]:
    """The size attributes that pruning changed, per module name (JSON: tuples become lists)."""
    before = dict(teacher.named_modules())
    out: dict[str, dict[str, Any]] = {}
    for name, m in student.named_modules():
        old = before.get(name)
        changed = {a: _plain(getattr(m, a)) for a in SIZE_ATTRS
                   if hasattr(m, a) and old is not None and getattr(m, a) != getattr(old, a)}
        if changed:
            out[name] = changed
    return out


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def rebuild(teacher, structure: dict[str, dict[str, Any]], state_dict: dict):
    """The pruned student from an unpruned teacher: the recorded sizes set, the parameters and buffers of the
    modules they name given the shapes `state_dict` holds, then the weights loaded strictly (any other
    mismatch is an error, not a guess)."""
    import torch

    model = copy.deepcopy(teacher)
    for name, m in model.named_modules():
        if name not in structure:  # a module pruning left alone keeps its shapes: a mismatch fails the load
            continue
        for attr, value in structure[name].items():
            setattr(m, attr, tuple(value) if isinstance(value, list) else value)
        prefix = f"{name}." if name else ""
        for pname, p in list(m.named_parameters(recurse=False)):
            want = state_dict.get(prefix + pname)
            if want is not None and tuple(want.shape) != tuple(p.shape):
                setattr(m, pname, torch.nn.Parameter(torch.empty(want.shape, dtype=p.dtype)))
        for bname, b in list(m.named_buffers(recurse=False)):
            want = state_dict.get(prefix + bname)
            if want is not None and b is not None and tuple(want.shape) != tuple(b.shape):
                m.register_buffer(bname, torch.empty(want.shape, dtype=b.dtype))
    model.load_state_dict(state_dict)
    return model


def params(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))

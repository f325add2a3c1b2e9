"""Quantization-aware distillation: the student with PyTorch's own fake quantization (torch.ao FX
`prepare_qat_fx`) set to what onnxruntime will run, fine-tuned against the teacher, exported as a QDQ model
whose int8 graph onnxruntime fuses exactly as it fuses its own post-training one.

What "matches what will run" means here, each measured against the PTQ graph of the same model (RESULTS.md):
- activations per tensor, u8 or s8 as the preset says; weights per output channel, symmetric s8;
- Conv+BatchNorm trained as PyTorch's QAT ConvBn modules (fake quantization on the folded weight; training a
  pre-folded conv instead lost 1-2 points where the same fine-tune without quantization gained 2), then folded
  for export, as onnxruntime folds it (its int8 conv has no BN);
- ReLU/ReLU6/clamp observed after the activation, not before: onnxruntime's quantizer drops such an activation
  when the following quantize saturates inside its bounds, so the trained graph must not round twice;
- per-tensor scales and zero points exported as scalars: onnxruntime's QLinearAdd fusion wants them so.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError

CLIPS_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
CLIPS_FUNCTIONS = (F.relu, F.relu6, F.hardtanh, torch.relu, torch.clamp)


def qconfig(activations: str = "QUInt8", weight_bits: int = 8):
    """Fake quantization as onnxruntime's QDQ quantizer writes it: `activations` QUInt8 (0..255) or QInt8
    (-128..127), asymmetric per tensor; weights symmetric per output channel (7-bit for reduce-range)."""
    from torch.ao.quantization import (
        FakeQuantize,
        MovingAverageMinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
        QConfig,
    )

    u8 = activations == "QUInt8"
    act = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0 if u8 else -128,
                                 quant_max=255 if u8 else 127, dtype=torch.quint8 if u8 else torch.qint8,
                                 qscheme=torch.per_tensor_affine)
    half = 2 ** (weight_bits - 1)
    weight = FakeQuantize.with_args(observer=MovingAveragePerChannelMinMaxObserver, quant_min=-half,
                                    quant_max=half - 1, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                    ch_axis=0)
    return QConfig(activation=act, weight=weight)


def backend_config():
    """PyTorch's native backend config with clamps (ReLU6, hardtanh, clamp) observed on their own output
    (native shares the input's observer, which would keep the pre-clamp range onnxruntime never uses)."""
    import torch.ao.quantization.backend_config.utils  # noqa: F401  (native.py needs it imported)
    from torch.ao.quantization.backend_config import BackendConfig, ObservationType, get_native_backend_config

    native = get_native_backend_config()
    clamps = {nn.ReLU6, nn.Hardtanh, F.relu6, F.hardtanh, F.hardtanh_, torch.clamp, "clamp"}
    for c in native.configs:
        if c.pattern in clamps:
            c.observation_type = ObservationType.OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT
    return BackendConfig("edgekd-onnxruntime").set_backend_pattern_configs(native.configs)


def prepare(model: nn.Module, example: tuple[torch.Tensor, ...], activations: str = "QUInt8",
            weight_bits: int = 8) -> nn.Module:
    """A fake-quantized copy of `model`, ready to fine-tune (Conv+BN(+ReLU) fused into QAT modules)."""
    from torch.ao.quantization import QConfigMapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    try:
        gm = prepare_qat_fx(copy.deepcopy(model).train(),
                            QConfigMapping().set_global(qconfig(activations, weight_bits)), example,
                            backend_config=backend_config())
    except Exception as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UsageError(f"--qat needs a student torch.fx can trace; {type(model).__name__} stopped it: "
                         f"{type(e).__name__}: {reason}", "ship the PTQ or mixed-precision model, or a family "
                         "student (mlp, resnet, mobilenet)") from None
    _observe_after_clamps(gm)
    return gm


def _observe_after_clamps(gm) -> None:
    """Drop the fake quantize between a conv/linear and the ReLU/ReLU6 after it: onnxruntime quantizes only
    the activation's output (and drops the activation), so training must round there once, not twice."""
    from torch.ao.quantization import FakeQuantize

    mods = dict(gm.named_modules())

    def is_clamp(n) -> bool:
        return (n.op == "call_module" and isinstance(mods.get(n.target), CLIPS_MODULES)) or \
            (n.op == "call_function" and n.target in CLIPS_FUNCTIONS)

    for n in list(gm.graph.nodes):
        fq = n.op == "call_module" and isinstance(mods.get(n.target), FakeQuantize)
        if not fq or len(n.users) != 1 or not is_clamp(next(iter(n.users))):
            continue
        src = n.args[0]
        if src.op == "call_module" and isinstance(mods.get(src.target), (nn.Conv1d, nn.Conv2d, nn.Linear)):
            n.replace_all_uses_with(src)
            gm.graph.erase_node(n)
    gm.graph.eliminate_dead_code()
    gm.recompile()


def calibrate(model: nn.Module, batches) -> None:
    """Start from the PTQ calibration: observers see the calibration batches with fake quantization off."""
    from torch.ao.quantization import disable_fake_quant, enable_fake_quant, enable_observer

    model.apply(enable_observer)
    model.apply(disable_fake_quant)
    with torch.no_grad():
        for b in batches:
            model(*b)
    model.apply(enable_fake_quant)


def freeze(model: nn.Module) -> nn.Module:
    """Scales and zero points fixed (observers off) and BatchNorm folded into its conv, for export and for the
    parity check: the same function in eval mode, in the form onnxruntime's int8 conv computes."""
    from torch.ao.quantization import FakeQuantize, disable_observer

    model.apply(disable_observer)
    _fold_batchnorm(model)
    for m in model.modules():  # a 7-bit weight range exports as int8 (ONNX's Q/DQ types); its scale stays 7-bit
        if isinstance(m, FakeQuantize) and m.dtype == torch.qint8 and m.quant_min > -128:
            m.quant_min, m.quant_max = -128, 127
            m.activation_post_process.quant_min, m.activation_post_process.quant_max = -128, 127
    return model.eval()


def _fold_batchnorm(model: nn.Module) -> None:
    """Each QAT Conv+BN(+ReLU) module replaced by a QAT conv (+ReLU) whose weight and bias are the folded ones
    and whose weight fake quantization is the trained one: eval mode computes exactly what it did."""
    import torch.ao.nn.intrinsic.qat as nniqat
    import torch.ao.nn.qat as nnqat

    kinds = {nniqat.ConvBn1d: nnqat.Conv1d, nniqat.ConvBn2d: nnqat.Conv2d,
             nniqat.ConvBnReLU1d: nniqat.ConvReLU1d, nniqat.ConvBnReLU2d: nniqat.ConvReLU2d}
    for name, m in list(model.named_modules()):
        kind = kinds.get(type(m))
        if kind is None:
            continue
        bn = m.bn
        factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = m.bias if m.bias is not None else torch.zeros_like(bn.running_mean)
        conv = kind(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups, True,
                    m.padding_mode, qconfig=m.qconfig)
        with torch.no_grad():
            conv.weight.copy_(m.weight * factor.reshape(-1, *[1] * (m.weight.dim() - 1)))
            conv.bias.copy_((bias - bn.running_mean) * factor + bn.bias)
        conv.weight_fake_quant = m.weight_fake_quant
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, conv.eval())


def tidy(path: Path) -> dict:
    """The exported QDQ graph in the form onnxruntime's fusions expect: per-tensor scales and zero points as
    scalar initializers, and a ReLU/Clip dropped where the quantize after it saturates inside its bounds."""
    import onnx
    from onnx import numpy_helper as nh

    model = onnx.load(str(path))
    g = model.graph
    init = {i.name: nh.to_array(i) for i in g.initializer}
    made = {o: n for n in g.node for o in n.output}

    def const(name: str):
        if name in init:
            return init[name]
        n = made.get(name)
        if n is not None and n.op_type == "Identity":
            return const(n.input[0])
        if n is not None and n.op_type == "Constant":
            return nh.to_array(n.attribute[0].t)
        return None

    scalars = 0
    for n in g.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            for j in (1, 2):
                v = const(n.input[j]) if len(n.input) > j else None
                if v is not None and v.size == 1 and v.ndim > 0:
                    name = f"{n.input[j]}.scalar"
                    if name not in init:
                        init[name] = v.reshape(())
                        g.initializer.append(nh.from_array(init[name], name))
                    n.input[j] = name
                    scalars += 1
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    dropped = [n for n in g.node if _redundant_clamp(n, users, const)]
    for n in dropped:
        users[n.output[0]][0].input[0] = n.input[0]
        g.node.remove(n)
    onnx.save(model, str(path))
    return {"scalar_qparams": scalars, "clamps_dropped": len(dropped)}


def _redundant_clamp(n, users: dict, const) -> bool:
    """A Relu/Clip whose only consumer is a QuantizeLinear that saturates inside the clamp's bounds."""
    if n.op_type not in ("Relu", "Clip"):
        return False
    after = users.get(n.output[0], [])
    if len(after) != 1 or after[0].op_type != "QuantizeLinear":
        return False
    q = after[0]
    scale, zero = const(q.input[1]), const(q.input[2]) if len(q.input) > 2 else np.zeros((), np.uint8)
    if scale is None or zero is None or scale.size != 1:
        return False
    info = np.iinfo(zero.dtype)
    s, z = float(scale.reshape(-1)[0]), int(zero.reshape(-1)[0])
    lo, hi = s * (info.min - z), s * (info.max - z)

    def bound(i: int, default: float) -> float | None:
        if n.op_type == "Relu":
            return 0.0 if i == 1 else np.inf
        if len(n.input) <= i or not n.input[i]:
            return default
        v = const(n.input[i])
        return None if v is None else float(v.reshape(-1)[0])
    low, high = bound(1, -np.inf), bound(2, np.inf)
    return low is not None and high is not None and lo >= low - 1e-6 and hi <= high + 1e-6

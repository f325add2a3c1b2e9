"""ONNX fp32 -> int8 with onnxruntime.quantization: static QDQ (calibrated) or dynamic, accuracy-gated.

Presets follow onnxruntime's advice (see shared research, ort_quant.md): S8S8 QDQ per-channel where the CPU
has int8 dot products (VNNI, dotprod, i8mm); U8S8 with reduce_range on AVX2/AVX-512 without VNNI, where
VPMADDUBSW can saturate. When a preset loses too much accuracy, the gate tries fallbacks in order and keeps
the first that passes; if none passes, nothing is written and the command fails.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EdgekdError, UsageError

PRESETS = {
    "s8s8": {"activation": "QInt8", "weight": "QInt8", "per_channel": True, "reduce_range": False},
    "u8s8": {"activation": "QUInt8", "weight": "QInt8", "per_channel": True, "reduce_range": False},
    "u8s8-reduce-range": {"activation": "QUInt8", "weight": "QInt8", "per_channel": True, "reduce_range": True},
    "u8u8": {"activation": "QUInt8", "weight": "QUInt8", "per_channel": True, "reduce_range": False},
}


def host_preset() -> str:
    """The preset that suits this machine's CPU (int8 dot-product instructions or not)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "s8s8"
    if any(f in flags for f in ("avx512_vnni", "avx_vnni", "asimddp", "i8mm", "amx_int8")):
        return "s8s8"
    return "u8s8-reduce-range" if "avx2" in flags else "s8s8"


@dataclass
class Attempt:
    name: str
    preset: str
    keep_activations: bool = False
    exclude_ends: bool = False


def attempts(preset: str) -> list[Attempt]:
    """The preset, then fallbacks that fix the usual int8 accuracy losses (removed Relu/Clip, first/last layer)."""
    if preset not in PRESETS:
        raise UsageError(f"unknown int8 preset {preset!r} (known: {', '.join(PRESETS)})", "pick one of those")
    return [Attempt(preset, preset),
            Attempt(f"{preset}+keep-activations", preset, keep_activations=True),
            Attempt("u8u8+keep-activations", "u8u8", keep_activations=True),
            Attempt(f"{preset}+fp32-first-last", preset, keep_activations=True, exclude_ends=True)]


class _Reader:
    """Feeds calibration batches to onnxruntime's calibrator."""

    def __init__(self, input_name: str, x: np.ndarray, batch: int = 32) -> None:
        self._batches = [{input_name: x[i:i + batch]} for i in range(0, len(x), batch)]
        self._i = 0

    def get_next(self):
        if self._i >= len(self._batches):
            return None
        self._i += 1
        return self._batches[self._i - 1]

    def rewind(self) -> None:
        self._i = 0


def _end_nodes(model_path: Path) -> list[str]:
    """Names of the first and last compute nodes (Conv/Gemm/MatMul): the usual int8 culprits."""
    import onnx

    nodes = [n for n in onnx.load(str(model_path)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return list(dict.fromkeys([nodes[0].name, nodes[-1].name])) if nodes else []


def quantize_file(src: Path, dst: Path, attempt: Attempt, mode: str, calib_x: np.ndarray | None) -> None:
    """One quantization attempt: pre-process (shape inference, BN folding), then quantize to `dst`."""
    from onnxruntime import quantization as q

    logging.getLogger().setLevel(logging.ERROR)
    p = PRESETS[attempt.preset]
    extra = {"QDQKeepRemovableActivations": attempt.keep_activations}
    with tempfile.TemporaryDirectory() as td:
        pre = Path(td) / "pre.onnx"
        try:
            q.quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
        except Exception:  # symbolic shape inference chokes on some Reshape patterns: ONNX's own suffices
            q.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        exclude = _end_nodes(pre) if attempt.exclude_ends else None
        if mode == "dynamic":
            q.quantize_dynamic(str(pre), str(dst), per_channel=p["per_channel"], reduce_range=p["reduce_range"],
                               weight_type=getattr(q.QuantType, p["weight"]), nodes_to_exclude=exclude)
            return
        import onnx

        name = onnx.load(str(pre)).graph.input[0].name
        q.quantize_static(str(pre), str(dst), _Reader(name, calib_x), quant_format=q.QuantFormat.QDQ,
                          per_channel=p["per_channel"], reduce_range=p["reduce_range"],
                          activation_type=getattr(q.QuantType, p["activation"]),
                          weight_type=getattr(q.QuantType, p["weight"]),
                          calibrate_method=q.CalibrationMethod.MinMax, nodes_to_exclude=exclude,
                          extra_options=extra)


def gated_quantize(src: Path, dst: Path, mode: str, preset: str, calib_x: np.ndarray | None,
                   eval_x: np.ndarray, eval_y: np.ndarray | None, max_drop: float) -> dict:
    """Try the preset and its fallbacks; write the first int8 model within `max_drop` of fp32 to `dst`."""
    from .onnxutil import run_batches, session

    if mode not in ("static", "dynamic"):
        raise UsageError(f"unknown quantization mode {mode!r}", "use --mode static or --mode dynamic")
    if mode == "static" and (calib_x is None or len(calib_x) == 0):
        raise UsageError("static quantization needs calibration samples",
                         "pass --data SPEC (or use --mode dynamic)")
    ref = run_batches(session(src), eval_x)
    ref_acc = float((ref.argmax(-1) == eval_y).mean()) if eval_y is not None else None
    tried: list[dict] = []
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".quantize-") as td:
        for i, att in enumerate(attempts(preset)):
            cand = Path(td) / f"attempt{i}.onnx"
            try:
                quantize_file(src, cand, att, mode, calib_x)
            except Exception as e:
                tried.append({"name": att.name, "error": f"{type(e).__name__}: {str(e)[:200]}"})
                continue
            out = run_batches(session(cand), eval_x)
            agree = float((out.argmax(-1) == ref.argmax(-1)).mean())
            acc = float((out.argmax(-1) == eval_y).mean()) if eval_y is not None else None
            drop = (ref_acc - acc) if ref_acc is not None else (1.0 - agree)
            tried.append({"name": att.name, "accuracy": acc, "agreement_with_fp32": agree, "drop": drop,
                          "passed": drop <= max_drop})
            if drop <= max_drop:
                os.replace(cand, dst)  # same directory: atomic
                return {"mode": mode, "preset": preset, "chosen": att.name, "fp32_accuracy": ref_acc,
                        "int8_accuracy": acc, "agreement_with_fp32": agree, "accuracy_drop": drop,
                        "max_drop": max_drop, "attempts": tried, "eval_samples": int(len(eval_x))}
    best = min((t for t in tried if "drop" in t), key=lambda t: t["drop"], default=None)
    detail = f"best was {best['name']} with a drop of {best['drop']:.2%}" if best else \
        f"every attempt failed ({tried[-1].get('error', '')})"
    raise EdgekdError(f"no int8 model stayed within the accuracy gate of {max_drop:.2%}: {detail}",
                      "raise --max-drop, give more --calib-samples, or try --mode dynamic")

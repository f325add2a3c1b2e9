"""ONNX fp32 -> int8 with onnxruntime.quantization: static QDQ (calibrated) or dynamic, gated on accuracy
*and* speed.

Presets follow what MLAS runs (shared/research/ort_quant.md): on x86 its int8 kernels are U8S8 (uint8
activations, int8 weights), so S8S8 pays a conversion; U8S8 with reduce_range where there is no VNNI, since
VPMADDUBSW can saturate. On ARM, S8S8 is the fast path only with i8mm, U8S8 elsewhere. When a preset loses
too much accuracy, the gate tries fallbacks in order; every int8 candidate that passes is then timed against
fp32 (or predicted on the target profile), and the fastest is kept. If none is faster than fp32, nothing is
written unless the caller allows a slower model (and says so).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import numpy as np

from ..errors import EdgekdError, UsageError
from ..progress import say

PRESETS = {
    "s8s8": {"activation": "QInt8", "weight": "QInt8", "per_channel": True, "reduce_range": False},
    "u8s8": {"activation": "QUInt8", "weight": "QInt8", "per_channel": True, "reduce_range": False},
    "u8s8-reduce-range": {"activation": "QUInt8", "weight": "QInt8", "per_channel": True, "reduce_range": True},
    "u8u8": {"activation": "QUInt8", "weight": "QUInt8", "per_channel": True, "reduce_range": False},
}


def preset_for(isa: set[str], arch: str) -> tuple[str, str]:
    """(preset, why) for a CPU's features."""
    if arch == "arm64":
        if "i8mm" in isa:
            return "s8s8", "i8mm: MLAS's SMMLA kernels take int8 activations"
        return "u8s8", "ARM without i8mm: MLAS's fast path takes uint8 activations"
    if isa & {"avx512_vnni", "avx_vnni", "amx_int8", "amx"}:
        return "u8s8", "x86 with VNNI: MLAS's int8 kernels are U8S8 (S8S8 pays a conversion)"
    if "avx2" in isa:
        return "u8s8-reduce-range", "x86 AVX2 without VNNI: U8S8 with reduce_range (VPMADDUBSW can saturate)"
    return "u8s8", "x86: MLAS's int8 kernels are U8S8"


def host_isa() -> tuple[set[str], str]:
    """This machine's CPU flags and architecture."""
    import platform

    from .measure import cpu_flags

    arch = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"
    return cpu_flags(), arch


def host_preset() -> str:
    """The preset that suits this machine's CPU (from the ISA flags it reports)."""
    return preset_for(*host_isa())[0]


def mode_for(model_path: Path) -> tuple[str, str]:
    """(mode, why) from the graph: static QDQ for conv nets, dynamic for MatMul/attention-heavy and recurrent
    graphs (dynamic quantization of convs, ConvInteger, runs several times slower than fp32 on CPU)."""
    import onnx

    ops = [n.op_type for n in onnx.load(str(model_path), load_external_data=False).graph.node]
    if any(op in ("LSTM", "GRU", "RNN") for op in ops):
        return "dynamic", "a recurrent graph"
    convs, matmuls = sum(op == "Conv" for op in ops), sum(op in ("MatMul", "Gemm", "Attention") for op in ops)
    if convs >= matmuls:
        return "static", "a conv graph"
    return "dynamic", "a MatMul/attention graph"


@contextlib.contextmanager
def _in(folder: Path) -> Iterator[None]:
    """Run in `folder`: onnxruntime's quantization tools leave temp files (sym_shape_infer_temp.onnx, .data
    sidecars) in the current directory, which is the user's."""
    prev = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(prev)


@dataclass
class Attempt:
    name: str
    preset: str
    keep_activations: bool = False
    exclude_ends: bool = False
    exclude: tuple[str, ...] = ()   # nodes kept in fp32 (mixed precision)
    calibration: str = "minmax"     # minmax | entropy | percentile
    weights: str = "int8"           # int8 (QDQ / dynamic) | int4 (MatMulNBits, weight-only) | fp16
    model: Path | None = None       # an int8 model made elsewhere (quantization-aware distillation), judged alike


CALIBRATIONS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
HISTOGRAM_SAMPLES = 128  # entropy and percentile keep a histogram of every activation: a memory cap


def attempts(preset: str, calibration: str = "minmax", weights: str = "int8") -> list[Attempt]:
    """The preset, then fallbacks that fix the usual int8 accuracy losses (removed Relu/Clip, first/last layer);
    int4 weights are one weight-only attempt."""
    if preset not in PRESETS:
        raise UsageError(f"unknown int8 preset {preset!r} (known: {', '.join(PRESETS)})", "pick one of those")
    if weights in ("int4", "fp16"):
        return [Attempt(f"{weights}-weights" if weights == "int4" else "fp16", preset, weights=weights)]
    c = calibration
    return [Attempt(preset, preset, calibration=c),
            Attempt(f"{preset}+keep-activations", preset, keep_activations=True, calibration=c),
            Attempt("u8u8+keep-activations", "u8u8", keep_activations=True, calibration=c),
            Attempt(f"{preset}+fp32-first-last", preset, keep_activations=True, exclude_ends=True, calibration=c)]


def _fp16(src: Path, dst: Path) -> None:
    """fp16 weights and activations with fp32 inputs and outputs (the casts an app expects), by onnxruntime's
    own converter: for GPU and NPU targets; CPUs mostly run it slower than fp32."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True))
    model.topological_sort()  # the converter appends its input casts last: onnx.checker refused the graph
    onnx.save(model.model, str(dst))


def _int4(src: Path, dst: Path) -> None:
    """Weight-only int4 of every MatMul with a constant weight (onnxruntime's MatMulNBits, block size 32):
    what transformer decoders and encoders ship with on CPU; convs and Gemms stay fp32."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    inits = {i.name for i in model.graph.initializer}
    if not any(n.op_type == "MatMul" and n.input[1] in inits for n in model.graph.node):
        raise UsageError(f"{src.name} has no MatMul with constant weights to quantize to int4 (its Gemms and "
                         "convs stay fp32)", "use --weights int8")
    quant = MatMulNBitsQuantizer(model, block_size=32, is_symmetric=True)
    quant.process()
    quant.model.save_model_to_file(str(dst))


def with_knobs(preset: str, per_channel: bool | None = None, reduce_range: bool | None = None) -> str:
    """The preset with --per-channel/--per-tensor and --reduce-range/--full-range applied: a derived preset
    (`u8s8+per-tensor`), registered beside the built-in ones; the preset itself when nothing changes."""
    if preset not in PRESETS:
        raise UsageError(f"unknown int8 preset {preset!r} (known: {', '.join(PRESETS)})", "pick one of those")
    knobs, parts = dict(PRESETS[preset]), [preset]
    for key, value, on, off in (("per_channel", per_channel, "per-channel", "per-tensor"),
                                ("reduce_range", reduce_range, "reduce-range", "full-range")):
        if value is not None and value != knobs[key]:
            knobs[key] = value
            parts.append(on if value else off)
    name = "+".join(parts)
    PRESETS.setdefault(name, knobs)
    return name


def speed_alternative(preset: str) -> Attempt | None:
    """The other activation type, tried for speed where the gate can time it (measured beats folklore)."""
    alt = {"s8s8": "u8s8", "u8s8": "s8s8", "u8s8-reduce-range": "u8s8"}.get(preset)
    return Attempt(alt, alt) if alt else None


class _Reader:
    """Feeds calibration batches (feed dicts) to onnxruntime's calibrator."""

    def __init__(self, feeds: list[dict]) -> None:
        self._batches = feeds
        self._i = 0

    def get_next(self):
        if self._i >= len(self._batches):
            return None
        self._i += 1
        return self._batches[self._i - 1]

    def rewind(self) -> None:
        self._i = 0


def calibration_feeds(io, feeds, batch: int = 32) -> list[dict]:
    """Feed dicts of calibration samples, `batch` at a time (the model's own batch when it is fixed)."""
    from ..models.io import batches

    return [feed for feed, _ in batches(io, feeds, batch)]


QDQ_MIN_OPSET = 13  # per-channel DequantizeLinear (its `axis`) needs opset 13


def _upgrade(src: Path, dst: Path) -> Path:
    """Convert an opset 10-12 model to opset 13 (per-channel QDQ needs it); the original is untouched."""
    import onnx
    from onnx import version_converter

    model = onnx.load(str(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), QDQ_MIN_OPSET)
    if opset >= QDQ_MIN_OPSET:
        return src
    onnx.save(version_converter.convert_version(model, QDQ_MIN_OPSET), str(dst))
    return dst


def _end_nodes(model_path: Path) -> list[str]:
    """Names of the first and last compute nodes (Conv/Gemm/MatMul): the usual int8 culprits."""
    import onnx

    nodes = [n for n in onnx.load(str(model_path)).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return list(dict.fromkeys([nodes[0].name, nodes[-1].name])) if nodes else []


def _preprocess(src: Path, dst: Path) -> None:
    """onnxruntime's quant_pre_process (shape inference, BN folding, basic optimizations)."""
    from onnxruntime import quantization as q

    try:
        q.quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
    except Exception:  # symbolic shape inference chokes on some Reshape patterns: ONNX's own suffices
        q.quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)


def quantize_file(src: Path, dst: Path, attempt: Attempt, mode: str, calib) -> None:
    """One quantization attempt: pre-process (opset 13 for per-channel QDQ, shape inference, BN folding),
    then quantize to `dst`. `calib` is a list of feed dicts, or one array for a single-input model."""
    import onnx
    from onnxruntime import quantization as q

    from .runtime import quiet_onnxruntime

    if attempt.model is not None:
        shutil.copyfile(attempt.model, dst)
        return
    logging.getLogger().setLevel(logging.ERROR)
    quiet_onnxruntime()  # the calibrators' own sessions log through the default logger
    p = PRESETS[attempt.preset]
    extra = {"QDQKeepRemovableActivations": attempt.keep_activations}
    src, dst = Path(src).resolve(), Path(dst).resolve()
    quiet = contextlib.redirect_stdout(StringIO())  # onnxruntime's calibrators print; --json owns stdout
    if attempt.weights in ("int4", "fp16"):
        with tempfile.TemporaryDirectory() as td, _in(Path(td)), quiet:
            return (_int4 if attempt.weights == "int4" else _fp16)(src, dst)
    with tempfile.TemporaryDirectory() as td, _in(Path(td)), quiet:
        pre = Path(td) / "pre.onnx"
        try:
            src = _upgrade(src, Path(td) / "opset13.onnx")
        except Exception:  # an op the converter cannot lift: per-tensor scales work at any opset
            p = {**p, "per_channel": False}
        _preprocess(src, pre)
        exclude = [*(_end_nodes(pre) if attempt.exclude_ends else []), *attempt.exclude] or None
        if mode == "dynamic":
            q.quantize_dynamic(str(pre), str(dst), per_channel=p["per_channel"], reduce_range=p["reduce_range"],
                               weight_type=getattr(q.QuantType, p["weight"]), nodes_to_exclude=exclude)
            return
        if isinstance(calib, np.ndarray):
            name = onnx.load(str(pre), load_external_data=False).graph.input[0].name
            calib = [{name: calib[i:i + 32]} for i in range(0, len(calib), 32)]
        if attempt.calibration != "minmax":
            calib = calib[:max(1, HISTOGRAM_SAMPLES // max(1, len(next(iter(calib[0].values())))))]
        q.quantize_static(str(pre), str(dst), _Reader(calib), quant_format=q.QuantFormat.QDQ,
                          per_channel=p["per_channel"], reduce_range=p["reduce_range"],
                          activation_type=getattr(q.QuantType, p["activation"]),
                          weight_type=getattr(q.QuantType, p["weight"]),
                          calibrate_method=getattr(q.CalibrationMethod, CALIBRATIONS[attempt.calibration]),
                          nodes_to_exclude=exclude,
                          extra_options=extra)


COMPUTE_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


def sensitive_nodes(src: Path, attempt: Attempt, calib: list[dict], batches: int = 4) -> list[tuple[str, float]]:
    """Compute nodes ranked by how much quantizing their inputs loses (the typical element's relative error,
    worst first), from onnxruntime's qdq_loss_debug: the QDQ model runs on a few calibration batches and each
    activation is compared before and after its QuantizeLinear/DequantizeLinear pair."""
    import onnx
    from onnxruntime.quantization import qdq_loss_debug as dbg

    src = Path(src).resolve()
    with tempfile.TemporaryDirectory() as td, _in(Path(td)):
        pre, qdq = Path(td) / "pre.onnx", Path(td) / "qdq.onnx"
        _preprocess(src, pre)
        quantize_file(pre, qdq, attempt, "static", calib)
        aug = Path(td) / "aug.onnx"
        dbg.modify_model_output_intermediate_tensors(str(qdq), str(aug))
        acts = dbg.collect_activations(str(aug), calib[:batches])
        matching = dbg.create_activation_matching(acts)
        err = {t: _typical_error(np.concatenate(m["pre_qdq"]), np.concatenate(m["post_qdq"]))
               for t, m in matching.items()}
        graph = onnx.load(str(pre)).graph
    score: dict[str, float] = {}
    producer = {o: n for n in graph.node for o in n.output}
    for t, e in err.items():  # a damaged tensor is charged to the compute nodes on both sides of it, and to the
        # node that made it whatever it is (a detector head's Sigmoid, Mul, Concat are quantized too)
        names = set(_compute_neighbours(graph, t))
        if t in producer and producer[t].name:
            names.add(producer[t].name)
        for name in names:
            score[name] = max(score.get(name, 0.0), e)
    return sorted(score.items(), key=lambda ne: -ne[1])


def _compute_neighbours(graph, tensor: str, depth: int = 4) -> set[str]:
    """The compute node that produced `tensor` and those that consume it, seen through element-wise nodes
    (Relu, Clip, Add ...) in between."""
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    found: set[str] = set()
    t, hops = tensor, 0
    while t in producer and hops < depth:  # back to the producing compute node
        node = producer[t]
        if node.op_type in COMPUTE_OPS:
            found.add(node.name)
            break
        t, hops = (node.input[0] if node.input else ""), hops + 1
    frontier, hops = [tensor], 0
    while frontier and hops < depth:  # forward to the consuming compute nodes
        nxt = []
        for t in frontier:
            for node in consumers.get(t, []):
                if node.op_type in COMPUTE_OPS:
                    found.add(node.name)
                else:
                    nxt.extend(node.output)
        frontier, hops = nxt, hops + 1
    return found


def _typical_error(x: np.ndarray, q: np.ndarray) -> float:
    """The typical element's relative quantization error: median |x - q| over median |x|, on the nonzero
    elements. One large channel sets a per-tensor scale that rounds every other element to zero: the
    tensor's SQNR still looks fine (the large channel carries the power), this does not (it reads ~1)."""
    x, q = np.ravel(x).astype(np.float64), np.ravel(q).astype(np.float64)
    nz = np.abs(x) > 0
    if not nz.any():
        return 0.0
    return float(np.median(np.abs(x - q)[nz]) / np.median(np.abs(x)[nz]))


def mixed_attempt(preset: str, ranked: list[str], k: int, base: tuple[str, ...] = ()) -> Attempt:
    """The preset with the `k` nodes int8 hurts most (and `base`, kept up front) in fp32."""
    kept = tuple(dict.fromkeys([*base, *ranked[:k]]))  # the names are in the result's fp32_nodes
    return Attempt(f"{preset}+fp32[{k} node{'s' * (k > 1)}]", preset, keep_activations=True, exclude=kept)


def smallest_passing(cap: int, passes: Callable[[int], bool], out_of_time: Callable[[], bool]) -> int | None:
    """The fewest of the ranked nodes to keep in fp32 (1..cap) for the gate to pass: 1, 2, 4 ... until one
    passes, then bisection between the last that failed and it (each probe a quantize and a scoring run,
    none repeated); None when even `cap` fails or the time is up."""
    lo, k, hi = 0, 1, None
    while k <= cap and not out_of_time():
        if passes(k):
            hi = k
            break
        lo, k = k, (cap if k < cap <= 2 * k else 2 * k)
    if hi is None:
        return None
    while hi - lo > 1 and not out_of_time():
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    return hi


RANGE_RATIO = 100.0  # a Concat whose inputs' ranges differ this much cannot share one int8 scale


def wide_concats(src: Path, calib: list[dict], batches: int = 2) -> list[tuple[str, float]]:
    """Concat nodes whose inputs' calibrated ranges differ more than RANGE_RATIO times — a detector's box
    coordinates (0-640) beside its class scores (0-1): one int8 scale for both rounds every score to zero.
    (node name in the pre-processed graph, ratio), to keep in fp32 up front."""
    import onnx
    from onnx import helper

    from .runtime import log_severity

    src = Path(src).resolve()
    with tempfile.TemporaryDirectory() as td, _in(Path(td)):
        pre = Path(td) / "pre.onnx"
        _preprocess(src, pre)
        model = onnx.load(str(pre))
    inits = {i.name for i in model.graph.initializer}
    concats = [n for n in model.graph.node if n.op_type == "Concat" and n.name and
               len([i for i in n.input if i not in inits]) > 1]
    if not concats or not calib:
        return []
    tensors = list(dict.fromkeys(i for n in concats for i in n.input if i not in inits))
    model.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in tensors)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = log_severity()
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    peak = dict.fromkeys(tensors, 0.0)
    for feed in calib[:batches]:
        for t, v in zip(tensors, sess.run(tensors, feed)):
            peak[t] = max(peak[t], float(np.abs(v).max()) if v.size else 0.0)
    out = []
    for n in concats:
        ranges = [peak[i] for i in n.input if i in peak and peak[i] > 0]
        if len(ranges) > 1 and max(ranges) / min(ranges) > RANGE_RATIO:
            out.append((n.name, max(ranges) / min(ranges)))
    return out


def already_quantized(src: Path) -> bool:
    import onnx

    ops = {n.op_type for n in onnx.load(str(src), load_external_data=False).graph.node}
    return bool(ops & {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
                       "ConvInteger", "DynamicQuantizeLinear"})


# -> (fp32 ms, each candidate's ms, each candidate's Speedup over fp32, how it was measured)
Timer = Callable[[Path, list[Path]], tuple[float, list[float], list, str]]

# what the speed gate keeps, by its call on the fastest passing candidate (measure.Speedup.call)
# Only a measured win writes int8: "no measurable difference" is not one, and writing it then would make the
# decision flip with the machine's noise between "same" and "slower" (benchmarks/RESULTS.md, issue 25).
KEEP_DEFAULT = ("faster",)
KEEP_ANY = ("faster", "same", "slower")  # --allow-slower


class SlowerError(EdgekdError):
    """The speed gate's answer that int8 does not pay here: ship fp32. A result, not a failure: `quantize`
    records it and exits 0, unless --require-faster (exit 1). Carries the gate's details."""

    def __init__(self, message: str, hint: str | None = None, details: dict | None = None) -> None:
        super().__init__(message, hint)
        self.details = details or {}


def gated_quantize(src: Path, dst: Path, mode: str, preset: str, io, calib: list[dict] | None, eval_feeds,
                   eval_y: np.ndarray | None, max_drop: float, output: str | None = None,
                   timer: Timer | None = None, keep: tuple[str, ...] = KEEP_DEFAULT, calibration: str = "minmax",
                   weights: str = "int8", metric: str = "auto", time_limit: float = 600.0,
                   also: tuple[Attempt, ...] = ()) -> dict:
    """Try the preset and its fallbacks, then mixed precision (the fewest nodes in fp32, found by bisection
    over their ranking); of the int8 models within `max_drop` of fp32, keep the fastest (`timer` times or
    predicts fp32 and each candidate) and write it to `dst` — only if the speed gate's call on it (faster,
    same: no measurable difference, slower) is one of `keep`; else raise SlowerError. When none keeps the
    accuracy, AccuracyRefused carries the trade-off: every candidate's drop, the speed-up of the best ones, and
    the --max-drop that would take each. The search stops at `time_limit` seconds with what it found.
    `also` are candidates made elsewhere (quantization-aware distillation): always scored and timed beside.

    The drop is in accuracy points when the scored output is class logits with labels; otherwise it is
    1 - agreement with the fp32 model (top-1 for logits, cosine similarity for other outputs, a detector's
    boxes and scores each on their own). `metric` (accuracy, top1, cosine) overrides that choice."""
    from .measure import fidelity, is_probability_map, mask_iou, nn_agreement, output_activation
    from .runtime import open_session, run_outputs

    if mode not in ("static", "dynamic"):
        raise UsageError(f"unknown quantization mode {mode!r}", "use --mode static, dynamic or auto")
    if mode == "static" and not calib and weights == "int8":
        raise UsageError("static quantization needs calibration samples",
                         "pass --data SPEC (or use --mode dynamic)")
    if already_quantized(src):
        raise UsageError(f"{src} is already quantized (it has int8 ops)", "quantize the fp32 model instead")
    outs = run_outputs(open_session(src), io, eval_feeds)
    io = io.observed(outs)
    spec = io.primary(output)
    ref = outs[spec.name]
    labels = eval_y if spec.kind == "logits" and ref.ndim == 2 and eval_y is not None and \
        output_activation(ref) != "sigmoid" else None
    labeled = (labels >= 0) if labels is not None else None  # topped-up training samples may have no label
    if labeled is not None and not labeled.any():
        labels = labeled = None
    kind, labels = _gate_metric(metric, spec, ref, labels)
    if labels is None:
        labeled = None
    ref_acc = float((ref.argmax(-1) == labels)[labeled].mean()) if labels is not None else None
    tried: list[dict] = []
    passing: list[tuple[dict, Path]] = []
    made: list[tuple[dict, Path]] = []  # every candidate that was written and scored
    dst.parent.mkdir(parents=True, exist_ok=True)
    plan = attempts(preset, calibration, weights)
    alt = speed_alternative(preset) if timer is not None and weights == "int8" else None
    t0 = time.monotonic()

    def out_of_time() -> bool:
        return time.monotonic() - t0 > time_limit

    notes: list[str] = []
    keep_fp32: tuple[str, ...] = ()
    if mode == "static" and calib and weights == "int8":
        wide = wide_concats(src, calib)
        if wide:  # one int8 scale cannot hold both sides: fp32 from the first attempt on, and said
            keep_fp32 = tuple(n for n, _ in wide)
            notes.append("kept in fp32 up front: " + ", ".join(f"{n} (its inputs' ranges differ {r:.0f}x: one int8 "
                                                              "scale would round the small ones to zero)"
                                                              for n, r in wide))
            plan = [dataclasses.replace(a, exclude=(*a.exclude, *keep_fp32)) for a in plan]
            alt = dataclasses.replace(alt, exclude=(*alt.exclude, *keep_fp32)) if alt else None
    from ..files import clean_stale

    clean_stale(dst.parent, ".quantize-")  # what a killed quantize left
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".quantize-{os.getpid()}-") as td:
        def try_one(att: Attempt, cand: Path) -> tuple[dict, Path]:
            say(f"trying {att.name}" + (f" (after {len(tried)} attempt(s))" if tried else ""))
            try:
                quantize_file(src, cand, att, mode, calib)
                out = run_outputs(open_session(cand), io, eval_feeds, [spec.name])[spec.name]
            except UsageError:
                raise
            except Exception as e:
                row = {"name": att.name, "error": f"{type(e).__name__}: {str(e)[:200]}"}
                tried.append(row)
                return row, cand
            agree = (fidelity(ref, out, kind) or ("cosine", 0.0))[1]
            acc = float((out.argmax(-1) == labels)[labeled].mean()) if labels is not None else None
            drop = (ref_acc - acc) if labels is not None else (1.0 - agree)
            row = {"name": att.name, "accuracy": acc, "agreement_with_fp32": agree, "drop": drop,
                   "passed": drop <= max_drop, "fp32_nodes": list(att.exclude),
                   "max_drop_to_pass": math.ceil(max(drop, 0.0) * 1000 - 1e-9) / 1000, "qad": att.model is not None}
            if spec.kind == "embedding" and out.ndim == 2:  # what a search over the embeddings would notice
                row["nn_agreement_with_fp32"] = nn_agreement(ref, out)
            if kind != "mask_iou" and is_probability_map(ref):  # the thresholded decision, beside the cosine
                row["mask_iou_with_fp32"] = mask_iou(ref, out)
            tried.append(row)
            made.append((row, cand))
            return row, cand

        for i, att in enumerate(plan + ([alt] if alt else []) + list(also)):
            if (passing and i < len(plan) and i > 0) or (out_of_time() and tried and att.model is None):
                continue  # accuracy fallbacks only while nothing passed; the speed alternative always; the
                # first attempt whatever the time limit (a limit shorter than the set-up still gets an answer)
            row, cand = try_one(att, Path(td) / f"attempt{i}.onnx")
            if row.get("passed"):
                passing.append((row, cand))
        ptq_passed = any(not r["qad"] for r, _ in passing)  # QAD passing still leaves mixed precision to compare
        if not ptq_passed and mode == "static" and calib and weights == "int8" and not out_of_time():
            passing += _mixed_precision(src, preset, calib, keep_fp32, try_one, Path(td), out_of_time)
        if out_of_time():
            notes.append(f"the search stopped at --time-limit {time_limit:g} s with what it had found")
        if not passing:
            raise _refused(weights, "accuracy" if labels is not None else f"{spec.name} agreement", max_drop, tried,
                           made, timer, src, notes)
        speed = None
        if timer is not None:
            say(f"timing fp32 against {len(passing)} int8 model(s) that passed the accuracy gate")
            fp32_ms, cand_ms, speedups, how = timer(src, [c for _, c in passing])
            for (row, _), ms, sp in zip(passing, cand_ms, speedups):
                row.update(latency_ms=ms, speedup=sp.ratio)
            k = int(np.argmin(cand_ms))
            sp = speedups[k]
            speed = {"fp32_ms": fp32_ms, "int8_ms": cand_ms[k], **sp.to_dict(), "how": how}
            if sp.call not in keep:
                raise SlowerError(_slower_message(weights, sp, how, cand_ms[k], fp32_ms, passing[k][0]["name"]),
                                  "the fp32 model is the one to ship; --allow-slower writes int8 anyway",
                                  {"speed": speed, "attempts": tried, "chosen": passing[k][0]["name"],
                                   "gate_notes": notes})
        else:
            k = 0
        row, cand = passing[k]
        os.replace(cand, dst)  # same directory: atomic
    agreement_metric = (fidelity(ref, ref, kind) or ("cosine", 1.0))[0]
    return {"mode": mode if weights == "int8" else f"{weights}-weights", "preset": preset, "calibration": calibration,
            "weights": weights, "chosen": row["name"], "output": spec.name, "output_kind": spec.kind,
            "metric": "accuracy" if labels is not None else agreement_metric, "agreement_metric": agreement_metric,
            "fp32_accuracy": ref_acc, "int8_accuracy": row["accuracy"],
            "agreement_with_fp32": row["agreement_with_fp32"], "accuracy_drop": row["drop"], "max_drop": max_drop,
            "attempts": tried, "eval_samples": int(len(ref)), "speed": speed, "fp32_nodes": row.get("fp32_nodes", []),
            "nn_agreement_with_fp32": row.get("nn_agreement_with_fp32"),
            "mask_iou_with_fp32": row.get("mask_iou_with_fp32"), "gate_notes": notes}


def _mixed_precision(src: Path, preset: str, calib: list[dict], keep_fp32: tuple[str, ...], try_one, td: Path,
                     out_of_time) -> list[tuple[dict, Path]]:
    """The fewest of the nodes int8 hurts most kept in fp32 (beside `keep_fp32`) for the gate to pass, by
    galloping then bisection over their ranking: [(row, model)] of that candidate, or []."""
    say("no preset kept the accuracy: ranking the nodes by what int8 costs them (mixed precision)")
    base = Attempt(preset, preset, keep_activations=True, exclude=keep_fp32)
    ranked = [n for n, _ in sensitive_nodes(src, base, calib) if n not in keep_fp32]
    probes: dict[int, tuple[dict, Path]] = {}

    def passes(k: int) -> bool:
        probes[k] = try_one(mixed_attempt(preset, ranked, k, keep_fp32), td / f"mixed{k}.onnx")
        return bool(probes[k][0].get("passed"))
    k = smallest_passing(len(ranked) - 1, passes, out_of_time)  # at least one node stays int8
    return [probes[k]] if k is not None else []


class AccuracyRefused(SlowerError):
    """No int8 model kept the accuracy: ship fp32. Carries the trade-off (each candidate's drop, the best
    ones' speed-up, the --max-drop that would take each) so the user can choose in one more command."""


def _refused(weights: str, what: str, max_drop: float, tried: list[dict], made: list[tuple[dict, Path]], timer,
             src: Path, notes: list[str]) -> EdgekdError:
    """The refusal, with the best candidates (by drop) timed against fp32 so the table shows what each costs."""
    scored = sorted((m for m in made if "drop" in m[0]), key=lambda m: m[0]["drop"])
    if not scored:
        return EdgekdError(f"every {weights} attempt failed ({tried[-1].get('error', '') if tried else 'none ran'})",
                           "try --mode dynamic, or report the model")
    speed = ""
    if timer is not None:
        say(f"timing fp32 against the {min(3, len(scored))} closest int8 model(s), for the trade-off table")
        _, cand_ms, speedups, how = timer(src, [c for _, c in scored[:3]])
        for (row, _), ms, sp in zip(scored[:3], cand_ms, speedups):
            row.update(latency_ms=ms, speedup=sp.ratio)
        speed = f", {speedups[0].than('fp32')} {how}"
    best = scored[0][0]
    return AccuracyRefused(f"no {weights} model stayed within the {what} gate of {max_drop:.2%}: best was "
                           f"{best['name']} with a drop of {best['drop']:.2%}{speed}; nothing was written: ship "
                           "the fp32 model",
                           f"--max-drop {best['max_drop_to_pass']:g} takes it (the table lists the others); more "
                           "--calib-samples or --mode dynamic may do better",
                           {"attempts": tried, "chosen": None, "gate_notes": notes})


def _slower_message(weights: str, sp, how: str, int8_ms: float, fp32_ms: float, name: str) -> str:
    what = {"slower": "slower than", "same": "not measurably faster than"}.get(sp.call, "faster than")
    return (f"{weights} is {what} fp32 {how}: {sp.words()}, {int8_ms:.3g} vs {fp32_ms:.3g} ms ({name}; 95% "
            f"interval {sp.low:.2f}-{sp.high:.2f}x); nothing was written: ship the fp32 model")


GATE_METRICS = ("auto", "accuracy", "top1", "cosine", "mask_iou")


def _gate_metric(metric: str, spec, ref: np.ndarray, labels):
    """(the output kind fidelity scores by, the labels the gate uses or None) for `--metric`: auto (accuracy
    with labels, else the output's own agreement), accuracy (labels needed), top1 (agreement of the top
    class, per token for token logits) or cosine (any output)."""
    if metric not in GATE_METRICS:
        raise UsageError(f"--metric must be one of {', '.join(GATE_METRICS)}, got {metric!r}", "e.g. --metric cosine")
    if metric == "accuracy" and labels is None:
        raise UsageError(f"--metric accuracy needs labels for class logits; output {spec.name!r} "
                         f"({spec.kind}) has none here", "pass --data with labels, or --metric top1 / cosine")
    if metric == "top1":
        if ref.ndim not in (2, 3):
            raise UsageError(f"--metric top1 needs class scores; output {spec.name!r} has shape {ref.shape}",
                             "use --metric cosine")
        return ("logits" if ref.ndim == 2 else "token_logits"), None
    if metric == "cosine":
        return "cosine", None
    if metric == "mask_iou":
        from .measure import is_probability_map

        if not is_probability_map(ref):
            raise UsageError(f"--metric mask_iou needs a probability map (values in [0, 1], N x ... x H x W); output "
                             f"{spec.name!r} has shape {ref.shape} and values {ref.min():.3g}..{ref.max():.3g}",
                             "use --metric cosine")
        return "mask_iou", None
    return spec.kind, labels

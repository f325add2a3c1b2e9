"""Each step's options, declared once: the CLI, the Python API, `pipeline`, `demo` and the manifest read them.

A step's options are a dataclass; each field's metadata holds its help text (and choices). `click_options`
turns a dataclass into Click options, and `build` turns keyword arguments (from the CLI or the API) into a
validated instance, so a new option is one field here and nowhere else, and `pipeline` takes every option
of every step it runs.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError


def opt(default: Any, help: str, choices: tuple[str, ...] | None = None, flag: str | None = None,
        multiple: bool = False, minimum: float | None = None, maximum: float | None = None) -> Any:
    """A dataclass field with its CLI help. `flag` gives a boolean's `--x/--no-x` form; `minimum` and
    `maximum` bound numbers (checked by `build` for the CLI and the API alike)."""
    meta = {"help": help, "choices": choices, "flag": flag, "multiple": multiple, "min": minimum, "max": maximum}
    if multiple:
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DistillOptions:
    """`edgekd distill`: how the student is chosen and trained (the teacher, data and run are arguments)."""

    arch: str | None = opt(None, "file.py:Net or module:Net that the --teacher state dict fits.")
    profile: str | None = opt(None, "Target device profile name or .toml path (edgekd profiles list).")
    student: str | None = opt(None, "mlp:hidden=64, mobilenet:width=0.5, resnet:width=0.5, "
                                    "transformer:hidden=64,layers=2, file.py:factory; a bare family with "
                                    "--profile sizes it. Hugging Face teachers: hf:layers=2[,hidden=256,heads=4,"
                                    "intermediate=1024,pick=spread|ends|first|last,freeze=embeddings|none] (the "
                                    "teacher's config, smaller) or hf:PATH. prune[:ratio=0.5,importance=l2|l1|bn,"
                                    "rounding=8]: the teacher itself, channels cut (Torch-Pruning).")
    task: str | None = opt(None, "Hugging Face teachers: what the model is for (default: read from the folder).",
                           choices=("classification", "token-classification", "embedding"))
    trim_vocab: bool = opt(False, "Hugging Face students: keep only the token embeddings the training texts use "
                                  "(plus special tokens); other ids map to [UNK] inside the model.",
                           flag="trim-vocab")
    trust_pickle: bool = opt(False, "Load a teacher saved whole with torch.save(model): unpickling runs the code "
                                    "the file names, so only for files you trust.", flag="trust-pickle")
    output: str | None = opt(None, "The teacher output to distil when it returns several (a tuple, dict or "
                                   "ModelOutput). Default: logits, else the first.")
    output_kind: str = opt("auto", "What the teacher's output holds: logits, softmax probabilities or sigmoid "
                                   "(independent) probabilities; auto tells from its values on the data. Probabilities "
                                   "are distilled in logit space (sigmoid: BCE per output) and the student outputs "
                                   "the same kind.", choices=("auto", "logits", "softmax", "sigmoid"))
    epochs: int = opt(30, "Training epochs.", minimum=1, maximum=1_000_000)
    temperature: float = opt(4.0, "Softmax temperature T.", minimum=1e-6, maximum=1000)
    alpha: float = opt(0.9, "Weight of the soft KD term; 1-alpha weights the hard-label CE.", minimum=0, maximum=1)
    lr: float = opt(3e-3, "Peak learning rate (AdamW, cosine).", minimum=1e-12, maximum=100)
    batch_size: int = opt(64, "Training batch size.", minimum=2, maximum=1 << 20)
    method: str | None = opt(None, "ce, kd, dkd, hint, at, cosine, rkd, embed, or a weighted sum such as "
                                   "kd+hint:0.5; a method's own options after it: dkd:alpha=1,beta=8. Default: kd "
                                   "(embed for embedding teachers).")
    feature_map: list[str] = opt((), "TEACHER_MODULE:STUDENT_MODULE for feature methods (repeatable; @in taps "
                                     "a module's input). Default: the penultimate embeddings.", multiple=True)
    val_split: float | None = opt(None, "Share of training data held out for validation (early stopping, best "
                                        "epoch). Default: 0.1 for Hugging Face teachers, else 0.",
                                  minimum=0, maximum=0.9)
    patience: int | None = opt(None, "Stop after this many epochs without a better validation score (0: never). "
                                     "Default: 3 for Hugging Face teachers, else 0.", minimum=0, maximum=1_000_000)
    augment: bool | None = opt(None, "Images: random flip/crop (default on for image folders). Text: 3 variants "
                                     "of each training text, 15% of tokens replaced, labelled by the teacher (about "
                                     "4x the training time; default off).", flag="augment/--no-augment")
    cache: str = opt("auto", "Cache teacher outputs (needs deterministic inputs).",
                     choices=("auto", "memory", "disk", "off"))
    max_memory_mb: float = opt(512, "Most memory the teacher cache may hold: auto memory-maps it to disk beyond "
                                    "this, --cache memory refuses.", minimum=0.001, maximum=1e9)
    device: str = opt("auto", "Where to train.", choices=("auto", "cpu", "cuda"))
    resume: bool = opt(False, "Continue from RUN/checkpoints/last.pt.", flag="resume")
    force: bool = opt(False, "Distil into a run directory that already has later steps (their outputs are "
                             "removed: they belong to the old student).", flag="force")
    budget_ms: float | None = opt(None, "Latency budget for sizing the student (default: the profile's).",
                                  minimum=1e-9)
    memory_mb: float | None = opt(None, "Peak-memory budget for sizing the student (default: the profile's).",
                                  minimum=1e-9)
    quantize: str = opt("int8", "Size for the int8 model you will deploy (predicted int8 latency) or fp32.",
                        choices=("int8", "none"))
    threads: int | None = opt(None, "Threads on the device (default: the profile's cores); pipeline also "
                                    "benchmarks with it.", minimum=1, maximum=4096)
    margin: float | None = opt(None, "Sizing headroom: a candidate fits when predicted * (1 + margin) <= budget "
                                     "(default: the profile's calibrated median error, 0 for datasheet profiles).",
                               minimum=0, maximum=100)
    speedup: float | None = opt(None, "Sizing: the student must be predicted at least this many times faster than "
                                      "the teacher on the profile (default 1.05, a speed-up that can be measured), "
                                      "e.g. --speedup 3.", minimum=1, maximum=1000)
    init: str = opt("auto", "auto: start from the teacher's weights where the structures match (every k-th "
                            "layer, largest-norm units).", choices=("auto", "random"))
    unlabeled: str | None = opt(None, "Extra inputs without labels (a transfer set): SPEC.")
    label_column: str = opt("label", "CSV / JSONL label column.")
    text_column: str = opt("text", "Text data (.csv, .jsonl, datasets folder): the column holding the texts.")
    text_pair_column: str | None = opt(None, "Text data: the column holding each pair's second text.")
    max_length: int = opt(128, "Text data: tokens per text at most (longer texts are truncated and counted).",
                          minimum=1, maximum=100000)
    encoding: str = opt("utf-8", "Text and CSV data: the files' encoding, e.g. latin-1, cp1252, utf-16.")
    image_size: int | None = opt(None, "Image folders: resize to SIZE x SIZE.", minimum=1, maximum=16384)
    channels: str = opt("3", "Image folders: grayscale or RGB.", choices=("1", "3"))
    mean: str = opt("0.5", "Image normalisation mean(s), comma-separated.")
    std: str = opt("0.5", "Image normalisation std(s), comma-separated.")
    seed: int = opt(0, "Random seed (recorded; the same seed gives the same student).", minimum=0,
                    maximum=2**32 - 1)


@dataclass
class ExportOptions:
    exporter: str = opt("dynamo", "torch.onnx exporter (torchscript: the fallback, opset <= 17).",
                        choices=("dynamo", "torchscript"))
    opset: int = opt(18, "ONNX opset to export (the target's onnxruntime must support it).", minimum=11, maximum=21)
    ort_format: bool = opt(False, "Also write student.ort (and the required-operators config for a reduced "
                                  "onnxruntime build) for ORT mobile.", flag="ort-format")
    shape: list[str] = opt((), "Fix a symbolic input dim: NAME=1x3x320x320 (repeatable; plain .onnx files).",
                           multiple=True)
    optimize: str | None = opt(None, "Also write student.ort-LEVEL.onnx: the graph onnxruntime optimized offline "
                                     "at that level (all adds layout changes for this machine's CPU).",
                               choices=("basic", "extended", "all"))


@dataclass
class QuantizeOptions:
    mode: str = opt("auto", "static: QDQ calibrated on training samples; dynamic: weights only; auto: static for "
                            "conv graphs, dynamic for MatMul/attention and recurrent ones.",
                    choices=("auto", "static", "dynamic"))
    preset: str | None = opt(None, "s8s8, u8s8, u8s8-reduce-range or u8u8 (default: the profile's, else the "
                                   "host CPU's).")
    data: str | None = opt(None, "Data SPEC for calibration and the gate (default: the run's).")
    tokenizer: str | None = opt(None, "Text --data for an ONNX text model: its tokenizer (a folder or tokenizer.json; "
                                      "default: the one beside the model, or a run's app folder).")
    shape: list[str] = opt((), "Fix a symbolic input dim: NAME=1x3x320x320 (repeatable).", multiple=True)
    calib_samples: int = opt(256, "Calibration samples.", minimum=1, maximum=10_000_000)
    calibration: str = opt("minmax", "How activation ranges are set from the calibration samples (entropy and "
                                     "percentile use at most 128 samples: they keep a histogram per tensor).",
                           choices=("minmax", "entropy", "percentile"))
    weights: str = opt("int8", "int8: QDQ or dynamic int8; int4: weight-only int4 of the MatMuls (MatMulNBits), "
                               "for transformers; fp16: half precision with fp32 inputs and outputs, for GPU and "
                               "NPU targets.", choices=("int8", "int4", "fp16"))
    max_drop: float = opt(0.01, "Largest drop the int8 model may have, as a fraction: accuracy points (0.01 = "
                                "one point) with labels, else 1 - agreement with fp32 (top-1, or cosine for "
                                "other outputs); else fallbacks, else fail.", minimum=0, maximum=1)
    per_channel: bool | None = opt(None, "Per-channel (or per-tensor) weight scales, overriding the preset's "
                                         "(per-channel).", flag="per-channel/--per-tensor")
    reduce_range: bool | None = opt(None, "7-bit weights (or the full 8), overriding the preset's (reduce-range "
                                          "where VPMADDUBSW can saturate: x86 without VNNI).",
                                    flag="reduce-range/--full-range")
    metric: str = opt("auto", "What the gate measures: auto (accuracy with labels, else agreement by the output's "
                              "kind: top-1 for class logits, per token for token logits, cosine otherwise), "
                              "accuracy, top1, cosine, or mask_iou (a probability map: IoU of the pixels above "
                              "0.5, which is also reported beside the cosine).",
                      choices=("auto", "accuracy", "top1", "cosine", "mask_iou"))
    output: str | None = opt(None, "Where to write (default RUN/student.int8.onnx or MODEL.int8.onnx; .int4 / "
                                   ".fp16 for those --weights).")
    profile: str | None = opt(None, "The target device: its int8 preset, and int8 vs fp32 predicted on it (when "
                                    "it is not this machine). Default: the run's profile, else this machine.")
    threads: int | None = opt(None, "Threads to time or predict int8 vs fp32 with (default: 1 on this machine, "
                                    "the profile's cores on a profile).", minimum=1, maximum=4096)
    time_limit: float = opt(600, "Stop the int8 search (presets, fallbacks, mixed precision) after this many "
                                 "seconds, with what it found.", minimum=0.01, maximum=86400)
    allow_slower: bool = opt(False, "Write the int8 model even when it is slower than fp32 (it says so).",
                             flag="allow-slower")
    qat: bool = opt(False, "Also try quantization-aware distillation (a run's torch student): fake quantization as "
                           "onnxruntime runs it, fine-tuned against the teacher with the run's --method, exported "
                           "as QDQ; the gate judges it beside PTQ and mixed precision and keeps the best.",
                    flag="qat")
    qat_epochs: int | None = opt(None, "Epochs of --qat (default: a tenth of distill's, at least 1).", minimum=1,
                                 maximum=100_000)
    explain: bool = opt(False, "Say why int8 wins or loses: fp32 and the int8 model profiled op group by op group on "
                               "this machine (onnxruntime's profiler): kernels made faster, Quantize/Dequantize "
                               "cost, nodes left in fp32, EPs.", flag="explain")
    require_faster: bool = opt(False, "Exit 1 unless int8 is measurably faster than fp32 (a CI gate). Without it, "
                                      "int8 that does not pay is a result: nothing written, exit 0, fp32 recorded "
                                      "as the model to ship.", flag="require-faster")


@dataclass
class BenchOptions:
    data: str | None = opt(None, "Data SPEC for accuracy (default: the run's).")
    tokenizer: str | None = opt(None, "Text --data for an ONNX text model: its tokenizer (a folder or tokenizer.json; "
                                      "default: the one beside the model, or a run's app folder).")
    teacher: str | None = opt(None, "A plain .onnx target: the teacher's .onnx to compare with (retention, "
                                    "agreement, speed-up), benchmarked beside it.")
    shape: list[str] = opt((), "Fix a symbolic input dim: NAME=1x3x320x320 (repeatable).", multiple=True)
    threads: str | None = opt(None, "intra-op threads for ORT and PyTorch, or a list to sweep: 1,2 (default: the "
                                    "profile's cores, else 1; capped at this machine's).", minimum=1, maximum=1024)
    batch: str = opt("1", "Samples per timed run, or a list to sweep: 1,8.", minimum=1, maximum=65536)
    runs: int = opt(1000, "Timed runs per model and setting, at most (the --seconds cap ends them sooner).",
                    minimum=1, maximum=10_000_000)
    warmup: int = opt(20, "Untimed runs before timing (capped at a third of --seconds).", minimum=0,
                      maximum=1_000_000)
    seconds: float = opt(3.0, "Time cap per model and setting: a huge batch gets fewer runs, with a note.",
                         minimum=0.01, maximum=3600)
    memory: bool = opt(True, "Peak memory per model and EP, each in a fresh process.", flag="memory/--no-memory")
    profile: str | None = opt(None, "Also predict each model's latency on this profile (default: the run's); on a "
                                    "profile calibrated on this machine, report predicted vs measured.")
    output: str | None = opt(None, "Where to write bench.json (default RUN/bench.json, or MODEL.bench.json beside a "
                                   "plain .onnx); report.md, report.html and the plots go beside it.")
    ep: str = opt("cpu", "Execution providers to run each ONNX model on, comma-separated: cpu, openvino, cuda, "
                         "tensorrt, dml, qnn, xnnpack, nnapi, coreml, rocm (those this onnxruntime lacks are "
                         "skipped, saying what brings them; edgekd providers lists them).")
    ep_option: list[str] = opt((), "A provider option EP:KEY=VALUE (repeatable), e.g. openvino:device_type=CPU, "
                                   "tensorrt:trt_fp16_enable=True, tensorrt:trt_engine_cache_enable=True.",
                               multiple=True)
    spin: bool = opt(True, "onnxruntime's idle-thread spinning between runs. Calibrated profiles are measured "
                           "with --no-spin; use it to compare with their predictions at 2+ threads.",
                     flag="spin/--no-spin")


@dataclass
class TrustOptions:
    """Steps that may import code a run directory names (export, bench): only with the user's say-so."""

    trust_run: bool = opt(False, "Run the code the run directory names (its teacher.py, a factory student) although "
                                 "this user's edgekd did not record it: for a run you received and trust. A file "
                                 "changed since distill is refused anyway.", flag="trust-run")


@dataclass
class RemoteOptions:
    """Where a step runs: here, or on the device over SSH (`bench`, `profiles calibrate`)."""

    on: str | None = opt(None, "Run it on the device: ssh://user@host[:port][?python=PATH&connect=10&silence=300] "
                               "(seconds to connect, and without a heartbeat before the job counts as hung; your "
                               "SSH keys and config; the device needs python3 with onnxruntime, onnx and numpy, no "
                               "torch: "
                               "`edgekd device setup` installs them). bench takes several, comma-separated: "
                               "measured at once, reported side by side.")
    keep: bool = opt(False, "Leave the copied files on the device (to look at them there).", flag="keep")


# the sections of `distill --help` (and pipeline's): every option not named here is under "Options"
GROUPS = {
    "Teacher and data": ("teacher", "arch", "output", "output_kind", "trust_pickle", "data", "unlabeled",
                         "label_column", "text_column", "text_pair_column", "max_length", "encoding", "image_size",
                         "channels", "mean", "std", "augment", "val_split"),
    "Student and sizing": ("student", "init", "profile", "budget_ms", "memory_mb", "speedup", "quantize", "threads",
                           "margin"),
    "Training": ("method", "epochs", "temperature", "alpha", "lr", "batch_size", "feature_map", "patience", "device",
                 "seed", "resume", "force"),
    "Teacher cache": ("cache", "max_memory_mb"),
    "Hugging Face": ("task", "trim_vocab"),
    "Export": ("exporter", "opset", "ort_format", "shape", "optimize"),
    "Quantize": ("mode", "preset", "calib_samples", "calibration", "weights", "max_drop", "per_channel",
                 "reduce_range", "metric", "time_limit", "qat", "qat_epochs", "explain", "allow_slower",
                 "require_faster"),
    "Bench": ("batch", "runs", "warmup", "seconds", "memory", "ep", "ep_option", "spin"),
}


def group_of(name: str | None) -> str:
    """The `--help` section an option is listed in."""
    return next((g for g, members in GROUPS.items() if name in members), "Options")


# pipeline runs distill, export, quantize and bench: every option of each, once (a name two steps share,
# such as --threads or --profile, means the same thing in both); quantize's and bench's --data and --output
# are the run's own there.
PIPELINE_SKIP = {"data", "output", "teacher", "tokenizer"}


def fields(cls) -> list[dataclasses.Field]:
    return list(dataclasses.fields(cls))


def names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def build(cls, kw: dict, *, strict: bool = True):
    """An options instance from keyword arguments, each bounded number checked; unknown names are an error
    when `strict` (the API), else ignored (the pipeline hands every step the whole set)."""
    known = names(cls)
    unknown = sorted(set(kw) - known)
    if unknown and strict:
        raise UsageError(f"unknown option {unknown[0]!r} for {cls.__name__}",
                         f"known: {', '.join(sorted(known))}")
    values = {k: v for k, v in kw.items() if k in known}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        v = values[f.name]
        if f.metadata.get("multiple"):
            values[f.name] = list(v or ())
            continue
        _check(f, v, hints[f.name])
    return cls(**values)


def counts(value: Any, name: str) -> list[int]:
    """An option that takes one count or a list to sweep (`1,8`, 8 or [1, 8]) as a list of ints, each
    checked against the field's bounds."""
    f = next(x for x in dataclasses.fields(BenchOptions) if x.name == name)
    flag = "--" + name.replace("_", "-")
    parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out = []
    for part in parts:
        try:
            n = int(str(part).strip())
        except ValueError:
            raise UsageError(f"{flag} takes whole numbers separated by commas, got {value!r}",
                             f"e.g. {flag} 1,8") from None
        _check(f, n, int)
        out.append(n)
    if not out:
        raise UsageError(f"{flag} is empty", f"e.g. {flag} 1,8")
    return list(dict.fromkeys(out))


def _check(f: dataclasses.Field, v: Any, hint) -> None:
    flag = "--" + f.name.replace("_", "-")
    choices = f.metadata.get("choices")
    if v is None:
        return
    if choices and str(v) not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(choices)}, got {v!r}", f"e.g. {flag} {choices[0]}")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if isinstance(v, float) and not math.isfinite(v):
            raise UsageError(f"{flag} must be a finite number, got {v}", f"e.g. {flag} {f.default}")
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            bounds = (f">= {lo:g}" if hi is None else f"in [{lo:g}, {hi:g}]") if lo is not None else f"<= {hi:g}"
            raise UsageError(f"{flag} must be {bounds}, got {v}", f"e.g. {flag} {f.default}")


def click_options(*classes, skip: set[str] = frozenset(), only: set[str] | None = None):
    """A decorator adding one Click option per field of `classes` (a name two classes share once; those in
    `skip`, or outside `only`, left out)."""
    import click

    chosen: dict[str, tuple[dataclasses.Field, Any]] = {}
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in skip and (only is None or f.name in only) and f.name not in chosen:
                chosen[f.name] = (f, hints[f.name])

    def decorate(fn):
        for f, hint in reversed(list(chosen.values())):
            fn = _click_option(click, f, hint)(fn)
        return fn
    return decorate


def _click_option(click, f: dataclasses.Field, hint):
    meta = f.metadata
    name = "--" + f.name.replace("_", "-")
    if meta.get("flag"):
        decl = "--" + meta["flag"]
        extra = {} if "/" in decl else {"is_flag": True}
        return click.option(decl, f.name, default=f.default, show_default=f.default is not None and "/" in decl,
                            help=meta["help"], **extra)
    if meta.get("multiple"):
        return click.option(name, f.name, multiple=True, help=meta["help"])
    base = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
    kind = click.Choice(list(meta["choices"])) if meta.get("choices") else {int: int, float: float}.get(base, str)
    return click.option(name, f.name, default=f.default, type=kind, show_default=f.default is not None,
                        help=meta["help"])

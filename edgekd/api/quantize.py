"""`edgekd quantize`: fp32 ONNX to int8 with onnxruntime, kept only when it passes the gate."""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..deploy.quantize import SlowerError
from ..errors import UsageError
from ..files import sha256, step_lock
from ..resources import cores
from .options import QuantizeOptions
from .target import Result, bind_data, feed_notes, load_profile, model_data, resolve, run_profile


@dataclass
class QuantizeResult(Result):
    target: str
    output: str | None        # None: the speed gate said ship fp32, nothing was written (details["verdict"])
    size_bytes: int | None
    fp32_size_bytes: int
    details: dict
    written: bool = True


def quantize(target: str | os.PathLike, *, seed: int = 0, **options) -> QuantizeResult:
    """Quantize the exported student (or a plain .onnx) to int8, keeping it only if it passes the accuracy gate
    and is faster than fp32 — timed side by side on this machine, or predicted on the target profile
    (options: see `QuantizeOptions`)."""
    with step_lock(target, "quantize"):  # one writer per run directory
        return _quantize(target, seed=seed, **options)


def _quantize(target: str | os.PathLike, *, seed: int = 0, **options) -> QuantizeResult:
    from ..deploy.quantize import (
        KEEP_ANY,
        KEEP_DEFAULT,
                calibration_feeds,
        gated_quantize,
        mode_for,
        with_knobs,
    )
    from ..latency.graph import parse_shapes
    from ..models.io import ModelIO
    from ..progress import say
    from .options import build

    o = build(QuantizeOptions, options)
    if o.allow_slower and o.require_faster:
        raise UsageError("--allow-slower and --require-faster contradict each other", "pass one of them")
    keep = KEEP_ANY if o.allow_slower else KEEP_DEFAULT  # --require-faster: the same gate, exit 1
    t = resolve(target)
    shapes = parse_shapes(o.shape)
    run = t.run
    if run is None:
        src = t.path
        from ..deploy.quantize import already_quantized

        if already_quantized(src):  # said before asking for data it would not need
            raise UsageError(f"{src} is already quantized (it has int8 ops)", "quantize the fp32 model instead")
        if o.data is None:
            raise UsageError(f"quantizing {src} needs --data SPEC (calibration and the accuracy gate use it)",
                             _data_hint(ModelIO.from_onnx(src)))
        dst = Path(o.output) if o.output else src.with_name(f"{src.stem}.{o.weights}.onnx")
        _refuse_run_artifact(src, dst, o.output)
        profile = o.profile
    else:
        src = _source(run)
        dst = Path(o.output) if o.output else run / QUANTIZED[o.weights]
        profile = o.profile or run_profile(run)
    if dst.is_dir():
        raise UsageError(f"--output {dst} is a directory", f"pass a file path, e.g. {dst / 'model.int8.onnx'}")
    if dst.resolve() == src.resolve():
        raise UsageError(f"--output {dst} is the model being quantized", "write the int8 model to another file")
    _refuse_target(dst, run)
    prof = load_profile(profile)
    md = model_data(t, o.data, o.tokenizer)
    io = ModelIO.from_onnx(src)
    eval_feeds = bind_data(io, md, shapes)
    all_calib = bind_data(io, md, shapes, "calib")
    order = np.random.default_rng(seed).permutation(len(all_calib))
    calib_feeds = all_calib.take(order[:o.calib_samples])
    eval_feeds, eval_y, gate_samples = _gate_set(eval_feeds, md.labels, all_calib, md.calib_labels,
                                                 order[o.calib_samples:])
    preset, preset_why = _preset(o.preset, prof)
    preset = with_knobs(preset, o.per_channel, o.reduce_range)
    mode, mode_why = (o.mode, "--mode") if o.mode != "auto" else mode_for(src)
    notes = feed_notes(io, eval_feeds, src)
    if mode == "dynamic" and mode_for(src)[0] == "static":
        notes.append("dynamic quantization of convs (ConvInteger) runs several times slower than fp32 on CPU; "
                     "static is the mode for conv nets")
    say(f"quantizing {src.name} ({mode}, preset {preset}) on {len(calib_feeds)} calibration samples; the gate "
        f"decides on {len(eval_feeds)}")
    explained: dict = {}
    timer = _timer(io, eval_feeds, prof, o.threads, explained)
    if o.explain:
        timer = _explaining(timer, io, eval_feeds, prof, o.threads, explained)
    if o.qat:
        _check_qat(run, mode, o.weights)
    try:
        with _qad_folder(dst, o.qat) as td:
            also = _qad(run, preset, td, o.qat_epochs, explained) if td else ()
            details = gated_quantize(src, dst, mode, preset, io, calibration_feeds(io, calib_feeds), eval_feeds,
                                     eval_y, o.max_drop, timer=timer, keep=keep,
                                     calibration=o.calibration, weights=o.weights, metric=o.metric,
                                     time_limit=o.time_limit, also=also)
    except SlowerError as e:  # the gate's answer: ship fp32 (exit 0, recorded), or exit 1 with --require-faster
        if run is not None and not o.qat and o.weights == "int8" and e.details.get("chosen") is None:
            from .qat import expected_minutes

            e.hint = f"{e.hint}; or --qat (quantization-aware distillation: about {expected_minutes(run):.1f} " \
                "min here)"
        details = {**e.details, "mode": mode, "preset": preset, "preset_source": "--preset" if o.preset else
                   preset_why, "mode_source": mode_why,
                   "notes": notes + e.details.get("gate_notes", []) + _qad_notes(explained), "written": False,
                   "hint": e.hint,
                   "weights": o.weights, "gate_samples": gate_samples, "source": src.name,
                   **explained}
        details["verdict"] = e.message + predicted_words(details)
        if run is not None:  # what later steps need: no int8 model, and why (bench shows fp32 and says it)
            run.record("quantize", {"written": False, "verdict": e.message, "preset": preset, "mode": mode,
                                    "weights": o.weights, "speed": details.get("speed"),
                                    "sha256": _kept_hashes(run, QUANTIZED[o.weights])})
            (run / QUANTIZED[o.weights]).unlink(missing_ok=True)
            _to_app_folder(run, None)
        if o.require_faster:
            raise
        return QuantizeResult(str(target), None, None, os.path.getsize(src), details, written=False)
    details.update(preset_source="--preset" if o.preset else preset_why, mode_source=mode_why,
                   notes=notes + details.get("gate_notes", []) + _qad_notes(explained),
                   written=True, gate_samples=gate_samples, source=src.name, **explained)
    res = QuantizeResult(str(target), str(dst), os.path.getsize(dst), os.path.getsize(src), details)
    details["verdict"] = verdict(res)
    if run is not None:
        app = _to_app_folder(run, dst) if dst == run / "student.int8.onnx" else None
        if app:
            details["app_folder"] = app
        own = dst.parent == run.path and dst.name in QUANTIZED.values()
        run.record("quantize", {**res.to_dict(), "output": run.rel(dst), "calib_samples": int(len(calib_feeds)),
                                "weights": o.weights, "sha256": {**_kept_hashes(run, dst.name if own else None),
                                                                 **({dst.name: sha256(dst)} if own else {})}})
    return res


# the run's quantized model, named by what it is: bench shows each as its own row (student_int8, student_int4 ...)
QUANTIZED = {"int8": "student.int8.onnx", "int4": "student.int4.onnx", "fp16": "student.fp16.onnx"}


def _kept_hashes(run, replaced: str | None) -> dict[str, str]:
    """The recorded sha256 of the run's other quantized models (an int4 quantize keeps the int8 model's)."""
    old = (run.manifest.get("steps", {}).get("quantize") or {}).get("sha256") or {}
    return {k: v for k, v in old.items() if k != replaced and (run / k).is_file()}


APP_INT8 = "model.int8.onnx"


def _to_app_folder(run, int8: Path | None) -> str | None:
    """A Hugging Face run's app folder (RUN/student/, written by export) gets the int8 model beside model.onnx
    when quantize wrote one, and loses a stale one when it did not: the folder an app ships is the run's
    verdict."""
    import shutil

    folder = run / "student"
    if not folder.is_dir():
        return None
    target = folder / APP_INT8
    if int8 is None:
        target.unlink(missing_ok=True)
        return None
    tmp = folder / f".{APP_INT8}.{os.getpid()}.tmp"
    shutil.copyfile(int8, tmp)
    os.replace(tmp, target)
    return f"student/{APP_INT8}"


def _data_hint(io) -> str:
    """What --data would feed this model: text for token ids, images for an image input, else an .npz."""
    names = io.input_names
    ins = {t.name: t for t in io.inputs}
    if "input_ids" in ins and ins["input_ids"].dtype.startswith("int"):
        return ("pass --data sentences.txt (or .csv/.jsonl; read with the tokenizer beside the model, or "
                f"--tokenizer PATH), or an .npz with arrays {', '.join(names)}")
    if len(io.inputs) == 1 and io.inputs[0].rank == 4 and io.inputs[0].dtype.startswith("float"):
        t = io.inputs[0]
        return f"pass --data DIR/CLASS/*.png (an image folder) or an .npz with {t.name} shaped {t.shape_str()}"
    return f"pass --data file.npz with one array per input, named {', '.join(names)}"


def _source(run) -> Path:
    """The run's fp32 student to quantize: the transformer-optimized one when export wrote it (its fused
    Attention quantizes to QAttention, and it is the fp32 model int8 must beat), else student.onnx."""
    plain = run.verify("student.onnx", "export")
    opt = ((run.step("export").get("models") or {}).get("student") or {}).get("optimized") or {}
    if "sha256" in opt and (run / opt["path"]).is_file():
        return run.verify(opt["path"], "export")
    return plain


GATE_MIN_SAMPLES = 200  # fewer and one sample moves the drop by half a point or more


def _gate_set(test, labels, train, train_labels, unused):
    """The samples the gate decides on: every test sample, topped up to GATE_MIN_SAMPLES with training samples
    calibration did not use (the drop compares fp32 and int8 on the same samples, so they measure it fairly)."""
    from ..models.io import Feeds

    need = GATE_MIN_SAMPLES - len(test)
    extra = unused[:max(0, need)]
    counts = {"test": len(test), "extra_train": int(len(extra))}
    if need <= 0 or not len(extra) or set(test.samples) != set(train.samples):
        return test, labels, {**counts, "extra_train": 0}
    more = train.take(extra)
    feeds = Feeds({k: np.concatenate([v, more.samples[k]]) for k, v in test.samples.items()}, test.constants,
                  test.generated, test.axes)
    if labels is None:
        return feeds, None, counts
    extra_y = train_labels[extra] if train_labels is not None and len(train_labels) == len(train) else \
        np.full(len(extra), -1, np.int64)
    return feeds, np.concatenate([labels, extra_y]), counts


def _preset(explicit: str | None, prof) -> tuple[str, str]:
    """The int8 preset and why: --preset, else the profile's (its CPU), else this machine's CPU."""
    from ..deploy.quantize import host_isa, preset_for

    if explicit:
        return explicit, "--preset"
    if prof is not None:
        return prof.int8_preset, f"the {prof.name} profile"
    preset, why = preset_for(*host_isa())
    return preset, f"this machine ({why})"


TIMING_ROUNDS = 7  # interleaved rounds of fp32 vs the int8 candidates: their spread is the gate's noise margin


def _timer(io, feeds, prof, threads: int | None, into: dict):
    """fp32 vs int8 candidates: timed side by side here, or predicted on a profile of another machine. With a
    profile, `into["predicted"]` gets the fastest candidate's predicted speed-up on it and the likely range
    its calibration's error implies (the verdict quotes it)."""
    from ..deploy.measure import Speedup, interleaved_rounds
    from ..latency.predictor import predict_latency, uncertainty
    from ..models.io import timing_feed

    shapes = feeds.batch_shapes(1)

    def quote(ms0: float, ms: float, n: int) -> None:
        r, band = ms0 / ms, uncertainty(prof)
        into["predicted"] = {"profile": prof.name, "speedup": r, "low": r / (1 + band), "high": r * (1 + band),
                             "threads": n}

    if prof is not None and not prof.measured_here:
        n = threads or prof.cores

        def predicted(src, cands):
            ms = [predict_latency(str(p), prof, threads=n, shapes=shapes).latency_ms for p in [src, *cands]]
            quote(ms[0], min(ms[1:]), n)
            return ms[0], ms[1:], [Speedup.predicted(ms[0], m) for m in ms[1:]], \
                f"on {prof.name} (predicted, {n} thread{'s' * (n > 1)})"
        return predicted
    n = min(threads or 1, cores())  # more threads than cores only measures the scheduler
    feed = timing_feed(io, feeds, io.batch or 1)

    def timed(src, cands):
        per = interleaved_rounds([src, *cands], feed, n, rounds=TIMING_ROUNDS)
        speedups = [Speedup.rounds(per[0], c) for c in per[1:]]
        ms = [float(np.median(v)) for v in per]
        if prof is not None:  # this machine's own profile: what it predicted, beside what was measured
            best = cands[int(np.argmin(ms[1:]))]
            quote(*(predict_latency(str(p), prof, threads=n, shapes=shapes).latency_ms for p in (src, best)), n)
        return ms[0], ms[1:], speedups, f"on this machine (p50, {n} thread{'s' * (n > 1)}, {TIMING_ROUNDS} " \
            "interleaved rounds)"
    return timed


@contextlib.contextmanager
def _qad_folder(dst: Path, wanted: bool):
    """Where --qat writes its model until the gate has judged it (beside the output, removed after)."""
    if not wanted:
        yield None
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".quantize-qad-") as td:
        yield Path(td)


def _qad_notes(explained: dict) -> list[str]:
    return list((explained.get("qad") or {}).get("notes") or [])


def _check_qat(run, mode: str, weights: str) -> None:
    if run is None:
        raise UsageError("--qat fine-tunes a run's student against its teacher: it needs a run directory",
                         "quantize the run (`edgekd quantize RUN --qat`), or drop --qat")
    if weights != "int8" or mode != "static":
        raise UsageError(f"--qat learns int8 activation scales: it needs --weights int8 and static mode, got "
                         f"--weights {weights}, mode {mode}", "drop --qat, or pass --mode static")


def _qad(run, preset: str, folder: Path, epochs: int | None, into: dict) -> tuple:
    """The QAD candidate for the gate (none when its int8 graph does not compute what was trained)."""
    from ..deploy.quantize import Attempt
    from .qat import qad

    m = qad(run, preset, folder, epochs)
    if not m.parity["passed"]:
        m.notes.append(f"the QAD model was left out: onnxruntime's int8 differs from the fake-quantized PyTorch "
                       f"model by {m.parity['mean_rel_diff']:.1%} ({m.parity['tolerance']})")
    into["qad"] = m.to_dict()
    return (Attempt("qad", preset, model=m.path),) if m.parity["passed"] else ()


def _explaining(timer, io, feeds, prof, threads: int | None, into: dict):
    """`timer`, and then the fastest candidate profiled op by op against fp32 on this machine (--explain)."""
    from ..deploy.explain import explain
    from ..models.io import timing_feed
    from ..progress import say

    n = min(threads or 1, cores())

    def timed_and_explained(src, cands):
        fp32_ms, cand_ms, speedups, how = timer(src, cands)
        say("profiling fp32 and the fastest int8 model op by op (--explain)")
        e = explain(src, cands[int(np.argmin(cand_ms))], timing_feed(io, feeds, io.batch or 1), n)
        if prof is not None and not prof.measured_here:
            e.where = f"on this machine, not on {prof.name}"
        into["explain"] = e.to_dict()
        return fp32_ms, cand_ms, speedups, how
    return timed_and_explained


def verdict(res: QuantizeResult) -> str:
    d = res.details
    drop = (f"{d['accuracy_drop'] * 100:.2f} accuracy points" if d["metric"] == "accuracy" else
            f"{d['agreement_with_fp32']:.2%} {d['agreement_metric']} with fp32")
    kind = {"int4": "int4 weights", "fp16": "fp16"}.get(d.get("weights"), f"int8 ({d['chosen']})")
    line = f"{kind}: {res.size_bytes / res.fp32_size_bytes:.0%} of fp32's size, {drop}"
    if d.get("mask_iou_with_fp32") is not None:
        line += f" (the mask above 0.5: IoU {d['mask_iou_with_fp32']:.3f})"
    if d.get("fp32_nodes"):
        nodes = d["fp32_nodes"]
        line += f"; {len(nodes)} node(s) kept in fp32" + (f" ({', '.join(nodes)})" if len(nodes) <= 3 else "")
    sp = d.get("speed")
    if sp:
        from ..deploy.measure import compared

        line += f"; {compared(sp['speedup'], 'fp32', sp.get('call'))} {sp['how']} ({sp['int8_ms']:.3g} vs " \
                f"{sp['fp32_ms']:.3g} ms)"
        if sp.get("call") == "same":
            line += ": written because --allow-slower"
    if d.get("qad"):
        q = d["qad"]
        line += f"; QAD: {q['epochs']} epoch(s) of {q['method']} in {q['seconds']:.0f} s"
    return line + predicted_words(d)


def predicted_words(d: dict) -> str:
    """The profile's prediction for the int8 model, beside the measured speed-up (or the range of a predicted
    one)."""
    p, sp = d.get("predicted"), d.get("speed") or {}
    if not p or not sp:
        return ""
    likely = f"{p['low']:.2f}x-{p['high']:.2f}x"
    if "predicted" in sp.get("how", ""):
        return f"; the prediction's likely range: {likely}"
    return f"; {p['profile']} predicted {p['speedup']:.2f}x (likely {likely})"


def _refuse_target(dst: Path, run) -> None:
    """--output must be a regular file (or nothing yet) and none of a run's own artifacts but its int8 model:
    `--output /dev/full` or `--output RUN/manifest.json` would replace what is there."""
    from ..files import MANIFEST
    from .rundir import PRODUCED_BY

    if dst.exists() and not dst.is_file() or dst.is_symlink():
        raise UsageError(f"--output {dst} is not a regular file (a device, a pipe or a link)",
                         "write the int8 model to a plain file path")
    own = {MANIFEST, "metrics.jsonl", ".edgekd.lock", *PRODUCED_BY} - set(QUANTIZED.values())
    if (dst.parent / MANIFEST).is_file() and dst.name in own:
        raise UsageError(f"--output {dst} is the run's own {dst.name}", "write the int8 model to another file")


def _refuse_run_artifact(src: Path, dst: Path, explicit: str | None) -> None:
    """`quantize runs/x/student.onnx` must not silently replace the run's own student.int8.onnx."""
    from ..files import MANIFEST

    if explicit is None and (src.parent / MANIFEST).is_file() and dst.exists():
        raise UsageError(f"{dst} belongs to the run directory {src.parent} and would be replaced",
                         f"quantize the run (`edgekd quantize {src.parent}`) or pass --output PATH")

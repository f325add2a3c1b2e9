"""`edgekd bench`: every model of a run (or one .onnx) timed side by side on the same real inputs."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgekdError, UsageError
from .options import BenchOptions
from .rundir import now, write_json
from .target import Result, bind_data, feed_notes, load_profile, model_data, resolve, run_teacher


@dataclass
class BenchResult(Result):
    target: str
    report: dict = field(default_factory=dict)


def bench(target: str | os.PathLike, *, warmup: int = 20, max_seconds: float = 3.0, **options) -> BenchResult:
    """Benchmark every model in RUN (teacher PyTorch/ONNX, student fp32/int8) side by side on ORT CPU, on
    the same real inputs for accuracy, timing and memory (options: see `BenchOptions`).
    With a profile, each ONNX model also gets its predicted latency; when the profile was calibrated on
    this machine, the prediction's error against the measurement too. spin=False turns onnxruntime's
    idle-thread spinning off, as calibration times kernels (it matters from 2 threads on)."""
    from ..deploy import measure as B
    from ..deploy.providers import options as ep_options
    from ..deploy.providers import parse as parse_eps
    from ..deploy.providers import placement
    from ..deploy.runtime import run_outputs
    from ..latency.graph import parse_shapes
    from ..models.io import ModelIO
    from .options import build

    o = build(BenchOptions, options)
    cores = os.cpu_count() or 1
    capped = None
    if o.threads > cores:  # more threads than cores only measures the OS scheduler: capped, and said
        capped, o.threads = o.threads, cores
    t = resolve(target)
    shapes = parse_shapes(o.shape)
    run = t.run
    onnx_models: dict[str, Path] = {}
    teacher, notes = None, []
    if run is None:
        if o.teacher:  # an ONNX teacher to compare with: what a device run without torch can still do
            from ..deploy.runtime import check_onnx_file

            check_onnx_file(o.teacher)
            onnx_models["teacher_onnx"] = Path(o.teacher)
        onnx_models["model"] = t.path
    else:
        if o.teacher:
            raise UsageError("--teacher is for a plain .onnx: a run directory benchmarks its own teacher",
                             "drop --teacher, or pass the student's .onnx file")
        run.step("distill")  # a run that was distilled
        onnx_models["student_fp32"] = run.verify("student.onnx", "export")
        if (run / "teacher.onnx").is_file():
            onnx_models["teacher_onnx"] = run.verify("teacher.onnx", "export")
        for key in ("student", "teacher"):  # onnxruntime's transformer fusions (Hugging Face models)
            if (run / f"{key}.optimized.onnx").is_file():
                onnx_models[f"{key}_optimized"] = run.verify(f"{key}.optimized.onnx", "export")
        if (run / "student.int8.onnx").is_file():
            onnx_models["student_int8"] = run.verify("student.int8.onnx", "quantize")
        try:
            teacher = run_teacher(run)
        except EdgekdError as e:
            notes.append(f"teacher_pytorch left out: {e.one_line()}")
    md = model_data(t, o.data)
    labels = md.labels if md else None
    seq = _fixed_seq(run)
    eps, ep_opts = parse_eps(o.ep), ep_options(o.ep_option)
    cpu_outs: dict[str, tuple] = {}  # each model's outputs on the CPU EP: what other EPs must agree with
    common = {"threads": o.threads, "batch": o.batch}
    if capped:
        notes.append(f"--threads {capped} is more than this machine's {cores} cores: measured with {cores} "
                     "(predict the device with --profile)")
    models: dict[str, dict] = {}
    ref_out, teacher_acc, student_fp32_out = None, None, None
    if teacher is not None:
        ref_io = ModelIO.from_onnx(onnx_models["student_fp32"])
        feeds = bind_data(ref_io, md, shapes)
        logits = _torch_predict(teacher, feeds)
        ref_out = logits
        kind = ref_io.primary().kind
        teacher_acc = B.score(logits, kind, labels, None, None)["accuracy"]
        timing = [_in_order(teacher, f) for f in B.feeds_for_timing(ref_io, feeds, o.batch)]
        models["teacher_pytorch"] = {"runtime": "pytorch", **common,
                                     "latency_ms": B.torch_latency(teacher, timing, o.threads, warmup, o.runs,
                                                                   max_seconds),
                                     "size_bytes": sum(p.numel() * p.element_size() for p in teacher.parameters()),
                                     **B.score(logits, kind, labels, ref_out, teacher_acc)}
    for ep, key0, path in _sessions_to_run(eps, onnx_models, notes):
        key = key0 if ep == "cpu" else f"{key0}@{ep}"
        io = ModelIO.from_onnx(path)
        feeds = bind_data(io, md, shapes)
        notes += feed_notes(io, feeds, path)
        sess = _ep_session(path, o.threads, o.spin, ep, ep_opts.get(ep), notes, key)
        if sess is None:
            continue
        outs = run_outputs(sess, io, feeds)
        io = io.observed(outs)
        spec = io.primary()
        out = outs[spec.name]
        timing = B.feeds_for_timing(io, feeds, o.batch)
        lat = B.onnx_latency(sess, timing, warmup, o.runs, max_seconds)
        if lat["runs"] < o.runs:
            notes.append(f"{key}: {lat['runs']} timed runs (the {max_seconds:g} s cap)")
        if key0 == "teacher_onnx" and ep == "cpu" and ref_out is None:  # no PyTorch teacher: its ONNX is the reference
            ref_out = out
            teacher_acc = B.score(out, spec.kind, labels, None, None)["accuracy"]
        row = {"runtime": "onnxruntime", "path": str(path), "provider": lat.pop("provider"), **common,
               "inputs": {k: list(v.shape) for k, v in timing[0].items()}, "output": spec.name,
               "output_kind": spec.kind, "latency_ms": lat, "size_bytes": os.path.getsize(path),
               **B.score(out, spec.kind, labels, ref_out, teacher_acc)}
        if ep == "cpu":
            cpu_outs[key0] = (out, spec.kind)
        else:  # onnxruntime falls back to the CPU silently: count where the nodes ran; and is it still right?
            row["placement"] = placement(path, ep, ep_opts.get(ep) or {}, timing[0], o.threads)
            row["fallback_nodes"] = row["placement"].get("CPUExecutionProvider", 0)
            if key0 in cpu_outs:
                f = B.fidelity(cpu_outs[key0][0], out, spec.kind)
                row["agreement_with_cpu"] = f[1] if f else None
        if key == "student_fp32":
            student_fp32_out = out
        if key == "student_int8" and student_fp32_out is not None:
            f = B.fidelity(student_fp32_out, out, spec.kind)
            row["agreement_with_student_fp32"] = f[1] if f else None
        if o.memory and ep == "cpu":
            row["memory"] = B.peak_memory(path, o.threads, timing[0])
        if seq and {"input_ids", "attention_mask"} <= set(feeds.samples):
            row[f"latency_seq{seq}_ms"] = {f"b{b}": B.onnx_latency(sess, [_token_feed(feeds.samples, seq, b)], 3,
                                                                   min(o.runs, 50), max_seconds)["p50"]
                                           for b in FIXED_SEQ_BATCHES}
        models[key] = row
    if "teacher_pytorch" in models:
        models["teacher_pytorch"]["provider"] = models["teacher_pytorch"]["latency_ms"].pop("provider")
    prediction = _predictions(o.profile, onnx_models, models, capped or o.threads, o.batch, shapes) \
        if o.profile else None
    report = {"schema_version": B.BENCH_SCHEMA_VERSION, "created": now(), "target": str(target),
              "host": B.host_info(), "settings": {**common, "runs": o.runs, "warmup": warmup, "spin": o.spin},
              "data": md.source if md else None, "models": models, "summary": _summary(models),
              "prediction": prediction, "notes": notes}
    report["verdict"] = verdict(models, report["summary"], prediction)
    q = (run.manifest.get("steps", {}).get("quantize") or {}) if run is not None else {}
    if q.get("written") is False:
        report["verdict"].insert(0, f"no int8 model: {q.get('verdict')}")
    if run is not None:
        from .report import write_report

        write_json(run / "bench.json", report)
        report["report"] = write_report(report, run.path).to_dict()
        run.record("bench", {"settings": report["settings"], "summary": report["summary"], "notes": notes})
    return BenchResult(str(target), report)


def _sessions_to_run(eps: list[str], paths: dict, notes: list[str]):
    """(EP, model key, path) for every EP this onnxruntime has; the others are skipped with what brings them."""
    from ..deploy.providers import EPS, available

    have = available()
    for ep in eps:
        if ep not in have:
            notes.append(f"--ep {ep}: this onnxruntime has no {EPS[ep].provider} ({EPS[ep].package}); skipped")
            continue
        for key, path in paths.items():
            yield ep, key, path


def _ep_session(path, threads: int, spin: bool, ep: str, opts: dict | None, notes: list[str], key: str):
    """A session on `ep` (the CPU behind it), or None with a note when the EP cannot take the model; a
    session that silently came up on another provider is said too."""
    from ..deploy.providers import EPS, providers_for
    from ..deploy.runtime import open_session

    try:
        sess = open_session(path, threads, spin=spin, providers=providers_for(ep, opts))
    except EdgekdError as e:
        if ep == "cpu":
            raise
        notes.append(f"{key}@{ep}: the session could not be created ({e.message}); the other EPs carry on")
        return None
    if sess.get_providers()[0] != EPS[ep].provider:
        notes.append(f"{key}@{ep}: onnxruntime gave the session {sess.get_providers()[0]}, not {EPS[ep].provider}")
    return sess


FIXED_SEQ = 128              # text models are also timed at this many tokens (what users compare across models)
FIXED_SEQ_BATCHES = (1, 8)


def _fixed_seq(run) -> int | None:
    """The fixed length to time a Hugging Face run's models at: 128 tokens, or the longest both models take."""
    if run is None:
        return None
    dist = run.step("distill")
    cfg = (dist.get("student") or {}).get("config") or {}
    if (dist.get("student") or {}).get("family") != "hf":
        return None
    return int(min(FIXED_SEQ, cfg.get("max_position_embeddings") or FIXED_SEQ))


def _token_feed(samples: dict[str, np.ndarray], seq: int, batch: int) -> dict[str, np.ndarray]:
    """`batch` rows of `seq` real tokens: the test texts' tokens run together (repeated when too few)."""
    ids, mask = samples["input_ids"], samples["attention_mask"].astype(bool)
    tokens = ids[mask]
    tokens = np.resize(tokens, seq * batch) if tokens.size else np.ones(seq * batch, ids.dtype)
    feed = {"input_ids": tokens.reshape(batch, seq).astype(ids.dtype),
            "attention_mask": np.ones((batch, seq), samples["attention_mask"].dtype)}
    for k, v in samples.items():
        if k not in feed:
            feed[k] = np.zeros((batch, seq), v.dtype)
    return feed


def _in_order(model, arrays: dict) -> dict:
    """Named arrays in the order the (adapted) PyTorch model takes them positionally: the data's order,
    which need not be the ONNX file's (optimum puts attention_mask before token_type_ids)."""
    names = getattr(model, "input_names", None)
    if not names or set(names) != set(arrays):
        return arrays
    return {n: arrays[n] for n in names}


def _torch_predict(model, feeds) -> np.ndarray:
    """A PyTorch model's output over bound feeds, each input where the model takes it."""
    from ..models.inference import predict

    samples = _in_order(model, dict(feeds.samples))
    return predict(model, samples if len(samples) > 1 else next(iter(samples.values())))


def _predictions(profile: str, paths: dict, models: dict, threads: int, batch: int, shapes: dict) -> dict:
    """Predicted latency per ONNX model; the error vs measured only when the profile is this machine."""
    from ..latency.predictor import predict_latency

    prof = load_profile(profile)
    here = prof.measured_here
    for key, path in paths.items():
        inputs = models[key].get("inputs") or shapes
        pred = predict_latency(str(path), prof, threads=threads, batch=batch, shapes=inputs).latency_ms
        models[key]["predicted_ms"] = pred
        if here:
            models[key]["prediction_error"] = pred / models[key]["latency_ms"]["p50"] - 1
    return {"profile": prof.name, "is_this_machine": here,
            "note": None if here else f"{prof.name} is not this machine: compare the predictions with "
                                      "measurements taken on the device (edgekd bench there)"}


def _fastest(models: dict, who: str) -> tuple[str | None, dict | None]:
    """The fastest fp32 ONNX model of the teacher or the student (plain, or transformer-optimized)."""
    mine = (f"{who}_onnx", f"{who}_optimized") if who == "teacher" else ("student_fp32", "student_optimized", "model")
    keys = [k for k in mine if k in models]
    if not keys:
        return None, None
    key = min(keys, key=lambda k: models[k]["latency_ms"]["p50"])
    return key, models[key]


def _summary(models: dict) -> dict:
    """Headline ratios: student vs teacher (ONNX), int8 vs fp32 (each the fastest fp32 ONNX model)."""
    out: dict[str, Any] = {}
    (_, t), (_, s), q = _fastest(models, "teacher"), _fastest(models, "student"), models.get("student_int8")
    best = q or s
    if t and best:
        out["size_ratio_vs_teacher"] = best["size_bytes"] / t["size_bytes"]
        out["speedup_vs_teacher_p50"] = t["latency_ms"]["p50"] / best["latency_ms"]["p50"]
        out["retention"] = best.get("retention")
    if s and q:
        out["int8_size_ratio"] = q["size_bytes"] / s["size_bytes"]
        out["int8_speedup_p50"] = s["latency_ms"]["p50"] / q["latency_ms"]["p50"]
        out["int8_agreement_with_fp32"] = q.get("agreement_with_student_fp32")
    return out


def verdict(models: dict, summary: dict, prediction: dict | None = None) -> list[str]:
    """The benchmark in words: which model to ship and why, against the teacher and against fp32."""
    lines = []
    (t_name, t), (s_name, s), q = _fastest(models, "teacher"), _fastest(models, "student"), models.get("student_int8")
    int8_wins = bool(s and q and summary.get("int8_speedup_p50", 0) >= 1)
    if s and q:
        sp = summary["int8_speedup_p50"]
        agree = q.get("agreement_with_student_fp32")
        kept = f" with {agree:.1%} agreement" if agree is not None else ""
        fp32 = Path(s["path"]).name
        lines.append(f"int8 is {sp:.2f}x faster than fp32 ({fp32}) here{kept}: ship student.int8.onnx" if int8_wins
                     else f"int8 is {1 - sp:.0%} slower than fp32 on this host: ship {fp32}")
    name, ship = ("student_int8", q) if int8_wins or not s else (s_name, s)
    if t and ship:
        ratio = t["latency_ms"]["p50"] / ship["latency_ms"]["p50"]
        speed = f"{ratio:.1f}x faster than" if ratio >= 1 else f"{1 / ratio:.1f}x SLOWER than"
        kept = f", {ship['retention']:.1%} of its accuracy" if ship.get("retention") is not None else (
            f", mean cosine {ship['agreement']:.3f} to its outputs" if ship.get("agreement_metric") == "cosine"
            and ship.get("agreement") is not None else
            f", {ship['agreement']:.1%} agreement with it" if ship.get("agreement") is not None else "")
        lines.append(f"{name}: {speed} the teacher ({t_name}) here{kept}, "
                     f"{ship['size_bytes'] / t['size_bytes']:.0%} of its size")
    if prediction and t and ship and "predicted_ms" in ship and "predicted_ms" in t:
        lines.append(f"predicted on {prediction['profile']}: {name} {t['predicted_ms'] / ship['predicted_ms']:.1f}x "
                     "as fast as the teacher")
    if not lines and "model" in models:
        m = models["model"]
        lines.append(f"model: p50 {m['latency_ms']['p50']:.3g} ms, p99 {m['latency_ms']['p99']:.3g} ms at batch "
                     f"{m['batch']} on {m['threads']} thread(s)")
    return lines


def render_markdown(report: dict) -> str:
    s = report["settings"]
    lines = [f"# edgekd benchmark: {report['target']}", "",
             f"Host: {report['host'].get('cpu', '?')} ({report['host'].get('cpu_count')} CPUs), onnxruntime "
             f"{report['host']['onnxruntime']}; batch {s['batch']}, {s['threads']} thread(s), {s['warmup']} warm-up, "
             f"up to {s['runs']} timed runs. Created {report['created']}.", "",
             "| model | runtime | p50 ms | p90 ms | p99 ms | size KB | peak RSS MB | accuracy | retention "
             "| agreement |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    fmt = lambda v, f="{:.2%}": "–" if v is None else f.format(v)  # noqa: E731
    for name, m in report["models"].items():
        lat = m["latency_ms"]
        peak = (m.get("memory") or {}).get("peak_rss_mb")
        lines.append(f"| {name} | {m['runtime']} | {lat['p50']:.3f} | {lat['p90']:.3f} | {lat['p99']:.3f} | "
                     f"{m['size_bytes'] / 1024:.1f} | {fmt(peak, '{:.0f}')} | {fmt(m['accuracy'])} | "
                     f"{fmt(m['retention'])} | {fmt(m['agreement'])} |")
    fixed = [(name, k, m[k]) for name, m in report["models"].items() for k in m if k.startswith("latency_seq")]
    if fixed:
        lines += ["", f"At a fixed length ({fixed[0][1].removeprefix('latency_seq').removesuffix('_ms')} tokens), "
                  "p50 ms:", "", "| model | " + " | ".join(f"batch {b[1:]}" for b in fixed[0][2]) + " |",
                  "|---|" + "---|" * len(fixed[0][2])]
        lines += [f"| {name} | " + " | ".join(f"{v:.3f}" for v in lat.values()) + " |" for name, _, lat in fixed]
    if report["summary"]:
        lines += ["", "Summary: " + ", ".join(f"{k} {v:.3f}" for k, v in report["summary"].items() if v is not None)]
    lines += ["", *(f"**{v}**" for v in report.get("verdict", []))]
    return "\n".join(lines) + "\n"

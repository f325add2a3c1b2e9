"""`edgekd bench`: every model of a run (or one .onnx) timed side by side on the same real inputs."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import resources
from ..deploy.measure import MIN_EFFECT
from ..errors import EdgekdError, UsageError, missing_module
from ..files import now, step_lock, write_json
from ..progress import say
from .options import BenchOptions, counts
from .target import Result, bind_data, feed_notes, load_profile, model_data, resolve, run_profile, run_teacher


@dataclass
class BenchResult(Result):
    target: str
    report: dict = field(default_factory=dict)


@dataclass
class Entry:
    """One model on one EP, as measured: its row of the report, and what timing it needs."""

    key: str                     # student_int8, or student_int8@openvino
    model: str                   # student_int8
    ep: str                      # cpu, openvino, ... or pytorch
    row: dict
    path: Path | None = None
    io: Any = None
    feeds: Any = None
    sessions: dict = field(default_factory=dict)  # threads -> onnxruntime session
    torch_model: Any = None


def bench(target: str | os.PathLike, *, on: str | None = None, keep: bool = False, trust_run: bool = False,
          **options) -> BenchResult:
    """Benchmark every model in RUN (teacher PyTorch/ONNX, student fp32/int8) on every EP asked for, side by
    side on the same real inputs, for accuracy, latency (a sweep over threads x batch), size and memory
    (options: see `BenchOptions`). With a profile, each ONNX model also gets its predicted latency; when the
    profile was calibrated on this machine, the prediction's error against the measurement too. spin=False
    turns onnxruntime's idle-thread spinning off, as calibration times kernels (it matters from 2 threads on)."""
    with step_lock(target, "bench"):  # one writer per run directory
        return _bench(target, on=on, keep=keep, trust_run=trust_run, **options)


def _bench(target: str | os.PathLike, *, on: str | None = None, keep: bool = False, trust_run: bool = False,
          **options) -> BenchResult:
    from ..deploy import measure as B
    from ..deploy.providers import options as ep_options
    from ..deploy.providers import parse as parse_eps
    from ..latency.graph import parse_shapes
    from .options import build

    o = build(BenchOptions, options)
    if on:
        return bench_on(target, on, keep, options)
    t = resolve(target)
    dst = _destination(t, o.output)
    eps, ep_opts = parse_eps(o.ep), ep_options(o.ep_option)
    _check_eps(eps)
    profile = o.profile or (run_profile(t.run) if t.run is not None else None)
    prof = load_profile(profile) if profile else None
    notes: list[str] = []
    threads, asked_threads = _threads(o, prof, notes)
    batches = counts(o.batch, "batch")
    shapes = parse_shapes(o.shape)
    onnx_models, teacher = _models(t, o, notes, trust_run)
    md = model_data(t, o.data, o.tokenizer)
    entries = _score(t, onnx_models, teacher, md, shapes, eps, ep_opts, threads[0], o.spin, notes)
    records = _sweep(entries, threads, batches, o, ep_opts, notes)
    models = {e.key: e.row for e in entries if "latency_ms" in e.row}
    if o.memory:
        say("peak memory of each model, each in a fresh process")
        for e in entries:
            if e.path is not None and e.key in models:
                e.row["memory"] = B.peak_memory(e.path, threads[0], _feed_at(e, batches[0])[0],
                                                _providers(e.ep, ep_opts))
    _fixed_length(t.run, entries, o)
    explained = _explained(entries, threads[0], batches[0], o.seconds)
    if explained and explained.get("caveat"):
        notes.append(explained["caveat"])
    prediction = _predictions(prof, onnx_models, models, asked_threads, batches[0], shapes) if prof else None
    settings = {"threads": threads[0], "batch": batches[0], "runs": o.runs, "warmup": o.warmup,
                "seconds": o.seconds, "spin": o.spin, "sweep": {"threads": threads, "batch": batches},
                "eps": eps}
    report = {"schema_version": B.BENCH_SCHEMA_VERSION, "created": now(), "target": str(target),
              "host": B.host_info(), "settings": settings, "data": md.source if md else None, "models": models,
              "records": records, "summary": _summary(models), "prediction": prediction, "notes": notes,
              "int8_explained": explained}
    ship = report["summary"]["shipped"]  # decided once (a bootstrap): every verdict line speaks of that model
    report["verdict"] = verdict(models, report["summary"], prediction) + sweep_verdict(models, records, ship) + \
        fixed_length_verdict(models, ship) + ([explained["reason"]] if explained else [])
    run = t.run
    q = (run.manifest.get("steps", {}).get("quantize") or {}) if run is not None else {}
    if q.get("written") is False:
        report["verdict"].insert(0, f"no {q.get('weights', 'int8')} model: {q.get('verdict')}")
    _save(report, dst, with_report=run is not None or o.output is not None)
    if run is not None:
        run.record("bench", {"settings": settings, "summary": report["summary"], "notes": notes,
                             "output": str(dst)})
    return BenchResult(str(target), report)


def _destination(t, output: str | None) -> Path:
    """Where bench.json goes: --output, else RUN/bench.json, else MODEL.bench.json beside a plain model (a device
    with ONNX files only still gets something to `compare`)."""
    if output is not None:
        dst = Path(output)
        if dst.is_dir():
            dst = dst / "bench.json"
        if not dst.parent.is_dir():
            raise UsageError(f"--output {output}: the folder {dst.parent} does not exist", "create it first")
        if dst.suffix.lower() != ".json":
            raise UsageError(f"--output {output} is not a .json file", "e.g. --output bench.json")
        return dst
    if t.run is not None:
        return t.run.path / "bench.json"
    return t.path.with_name(t.path.stem + ".bench.json")


def _check_eps(eps: list[str]) -> None:
    """Every asked EP missing from this onnxruntime is a usage error (an empty benchmark is no answer); some
    missing are skipped later, with a note."""
    from ..deploy.providers import EPS, available

    have = available()
    if eps and not any(ep in have for ep in eps):
        brings = "; ".join(f"{EPS[ep].provider}: {EPS[ep].package}" for ep in eps)
        raise UsageError(f"--ep {','.join(eps)}: this onnxruntime has none of them (it has {', '.join(have)})",
                         f"{brings}; `edgekd providers` lists them")


def bench_on(target: str | os.PathLike, url: str, keep: bool, options: dict) -> BenchResult:
    """The same bench on the device over SSH (edgekd.deploy.remote), or on several at once (`url` a comma-
    separated list). A run's result is kept in RUN/devices/HOST/ (bench.json, report.md, report.html) beside
    this workstation's bench and the profile's predictions, whose error is now against the device itself; the
    run's report.md then shows every device side by side."""
    from concurrent.futures import ThreadPoolExecutor

    from ..deploy import remote

    t = resolve(target)  # checked here, before anything is copied
    if t.run is not None:
        t.run.step("distill")
        t.run.verify("student.onnx", "export")
    urls = list(dict.fromkeys(u.strip() for u in url.split(",") if u.strip()))
    for u in urls:
        remote.parse(u)  # every URL checked before any device is contacted
    staged = remote.stage_bench(str(t.path), {k: v for k, v in options.items() if v is not None})
    if len(urls) == 1:
        return BenchResult(str(target), _one_device(t, target, urls[0], staged, keep))
    with ThreadPoolExecutor(len(urls)) as pool:  # each device is its own machine: measured at the same time
        # folders by URL: two Pis may both call themselves raspberrypi
        reports = list(pool.map(lambda u: _one_device(t, target, u, staged, keep, by_url=True), urls))
    if t.run is not None and (t.run / "bench.json").is_file():  # the run's own report, now with every device
        _save(json.loads((t.run / "bench.json").read_text(encoding="utf-8")), t.run / "bench.json")
    combined = {"target": str(target), "devices": reports,
                "verdict": [f"{r['device']['url']}: {v}" for r in reports for v in r.get("verdict", [])[:1]],
                "notes": [f"{r['device']['url']}: {n}" for r in reports for n in r.get("notes") or []]}
    return BenchResult(str(target), combined)


def _one_device(t, target, url: str, staged, keep: bool, by_url: bool = False) -> dict:
    from ..deploy import remote

    got = remote.run_on(url, "bench", staged, keep)
    report = got["result"]
    report["target"] = str(target)
    report["device"], report["overhead"], report["kept"] = got["device"], got["overhead"], got["kept"]
    pred = report.get("prediction")
    if pred:  # the profile is meant to be this device: its error is against the device's measurements
        for m in report["models"].values():
            if "predicted_ms" in m:
                m["prediction_error"] = m["predicted_ms"] / m["latency_ms"]["p50"] - 1
        pred.update(is_this_machine=True, measured_on=got["device"]["url"], note=None)
    if t.run is not None:
        here = t.run / "bench.json"
        if here.is_file():
            report["workstation"] = _workstation(json.loads(here.read_text(encoding="utf-8")), report)
        node = None if by_url else got["device"].get("node")
        _save(report, t.run / "devices" / device_folder(node, got["device"]["url"]) / "bench.json")
    return report


def device_folder(node: str | None, url: str) -> str:
    """RUN/devices/<this>: the name the device reports, as one safe path component (a device answering
    `../../x` or an absolute path must not write outside the run), else its URL's host."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(node or "")).strip("._")
    where = url.removeprefix("ssh://").split("?", 1)[0]  # user@host:port, not the ?python= path
    return name or re.sub(r"[^A-Za-z0-9._-]", "_", where).strip("._") or "device"


def _save(report: dict, path: Path, with_report: bool = True) -> None:
    """bench.json at `path`, and report.md, report.html and the plots beside it (`report` gets what was
    written)."""
    from .report import write_report

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, report)
    if with_report:
        report["report"] = write_report(report, path.parent).to_dict()


def _workstation(local: dict, device: dict) -> dict:
    """This workstation's p50 of each model the device measured at the same threads and batch."""
    s = device["settings"]
    return {"host": local.get("host", {}).get("cpu"), "created": local.get("created"),
            "p50_ms": {r["model"]: r["latency_ms"]["p50"] for r in local.get("records", [])
                       if r["ep"] in ("cpu", "pytorch") and r["threads"] == s["threads"] and r["batch"] == s["batch"]}}


def _threads(o: BenchOptions, prof, notes: list[str]) -> tuple[list[int], int]:
    """The thread counts to measure (capped at this machine's cores, said) and the first one asked for (what a
    profile predicts). Without --threads: the profile's cores, else 1."""
    asked = counts(o.threads if o.threads is not None else (prof.cores if prof else 1), "threads")
    cores = resources.cores()
    over = [n for n in asked if n > cores]
    if over:  # more threads than cores only measures the OS scheduler: capped, and said
        notes.append(f"--threads {','.join(map(str, over))} is more than this machine's {cores} cores: measured "
                     f"with {cores}" + (f" (the prediction for {prof.name} uses {asked[0]})" if prof else
                                        " (predict the device with --profile)"))
    return list(dict.fromkeys(min(n, cores) for n in asked)), asked[0]


def _models(t, o: BenchOptions, notes: list[str], trust_run: bool) -> tuple[dict[str, Path], Any]:
    """The ONNX models to measure, by key, and the PyTorch teacher (a run's; None when it cannot load)."""
    run = t.run
    onnx_models: dict[str, Path] = {}
    if run is None:
        if o.teacher:  # an ONNX teacher to compare with: what a device run without torch can still do
            from ..deploy.runtime import check_onnx_file

            check_onnx_file(o.teacher)
            onnx_models["teacher_onnx"] = Path(o.teacher)
        onnx_models["model"] = t.path
        return onnx_models, None
    if o.teacher:
        raise UsageError("--teacher is for a plain .onnx: a run directory benchmarks its own teacher",
                         "drop --teacher, or pass the student's .onnx file")
    run.step("distill")  # a run that was distilled
    student = run.verify("student.onnx", "export")
    if (run / "teacher.onnx").is_file():  # first: without torch it is the reference the others are scored by
        onnx_models["teacher_onnx"] = run.verify("teacher.onnx", "export")
    for key in ("teacher", "student"):  # onnxruntime's transformer fusions (Hugging Face models)
        if key == "student":
            onnx_models["student_fp32"] = student
        if (run / f"{key}.optimized.onnx").is_file():
            onnx_models[f"{key}_optimized"] = run.verify(f"{key}.optimized.onnx", "export")
    for weights in ("int8", "int4", "fp16"):  # each quantized model quantize wrote, named by what it is
        if (run / f"student.{weights}.onnx").is_file():
            onnx_models[f"student_{weights}"] = run.verify(f"student.{weights}.onnx", "quantize")
    try:
        return onnx_models, run_teacher(run, trust_run)
    except EdgekdError as e:
        notes.append(f"teacher_pytorch left out: {e.one_line()}")
    except ModuleNotFoundError as e:  # a runtime-only install (a device): the teacher's ONNX is the reference
        if missing_module(e) is None:
            raise
        notes.append(f"teacher_pytorch left out: {e.name} is not installed here; teacher_onnx is the reference")
    return onnx_models, None


def _score(t, onnx_models: dict, teacher, md, shapes: dict, eps: list[str], ep_opts: dict, threads: int,
           spin: bool, notes: list[str]) -> list[Entry]:
    """Every (model, EP) run over the whole eval set once: accuracy, retention and agreement with the teacher
    (and, off the CPU, with the same model on the CPU, and where the nodes really ran)."""
    from ..deploy import measure as B
    from ..deploy.providers import placement
    from ..deploy.runtime import model_size, run_outputs
    from ..models.io import ModelIO

    labels = md.labels if md else None
    entries: list[Entry] = []
    ref_out, teacher_acc, cpu_outs = None, None, {}
    if teacher is not None:
        io = ModelIO.from_onnx(onnx_models["student_fp32"])
        feeds = bind_data(io, md, shapes)
        ref_out = _torch_predict(teacher, feeds)
        kind = io.primary().kind
        teacher_acc = B.score(ref_out, kind, labels, None, None)["accuracy"]
        row = {"runtime": "pytorch", "provider": "pytorch-cpu", "threads": threads,
               "size_bytes": sum(p.numel() * p.element_size() for p in teacher.parameters()),
               **B.score(ref_out, kind, labels, ref_out, teacher_acc)}
        entries.append(Entry("teacher_pytorch", "teacher_pytorch", "pytorch", row, io=io, feeds=feeds,
                             torch_model=teacher))
    for ep, key0, path in _sessions_to_run(eps, onnx_models, notes):
        key = key0 if ep == "cpu" else f"{key0}@{ep}"
        say(f"scoring {key} on the eval set")
        io = ModelIO.from_onnx(path)
        feeds = bind_data(io, md, shapes)
        if ep == "cpu":
            notes += feed_notes(io, feeds, path)
        sess = _ep_session(path, threads, spin, ep, ep_opts.get(ep), notes, key)
        if sess is None:
            continue
        outs = run_outputs(sess, io, feeds)
        io = io.observed(outs)
        spec = io.primary()
        out = outs[spec.name]
        if key0 == "teacher_onnx" and ep == "cpu" and ref_out is None:  # no PyTorch teacher: its ONNX is the reference
            ref_out = out
            teacher_acc = B.score(out, spec.kind, labels, None, None)["accuracy"]
        row = {"runtime": "onnxruntime", "path": str(path), "provider": sess.get_providers()[0], "ep": ep,
               "threads": threads, "output": spec.name, "output_kind": spec.kind, "size_bytes": model_size(path),
               **B.score(out, spec.kind, labels, ref_out, teacher_acc)}
        if ep == "cpu":
            cpu_outs[key0] = out
        else:  # onnxruntime falls back to the CPU silently: count where the nodes ran; and is it still right?
            feed = next(iter(B.feeds_for_timing(io, feeds, io.batch or 1, 1)))
            row["placement"] = placement(path, ep, ep_opts.get(ep) or {}, feed, threads)
            row["fallback_nodes"] = row["placement"].get("CPUExecutionProvider", 0)
            if key0 in cpu_outs:
                f = B.fidelity(cpu_outs[key0], out, spec.kind)
                row["agreement_with_cpu"] = f[1] if f else None
        if key0 == "student_int8" and "student_fp32" in cpu_outs:
            f = B.fidelity(cpu_outs["student_fp32"], out, spec.kind)
            row["agreement_with_student_fp32"] = f[1] if f else None
        entries.append(Entry(key, key0, ep, row, path, io, feeds, {threads: sess}))
    return entries


def _explained(entries: list[Entry], threads: int, batch: int, seconds: float) -> dict | None:
    """The int8 student against the fp32 model it was quantized from, op group by op group on onnxruntime's
    CPU EP (what `quantize --explain` shows): why int8 won or lost here."""
    from ..deploy.explain import explain

    by = {e.key: e for e in entries if e.ep == "cpu" and e.path is not None}
    int8, fp32 = by.get("student_int8"), by.get("student_optimized") or by.get("student_fp32")
    if int8 is None or fp32 is None:
        return None
    say("profiling the fp32 and int8 students op by op")
    return explain(fp32.path, int8.path, _feed_at(int8, batch)[0], threads, min(seconds, 2.0)).to_dict()


def _feed_at(e: Entry, batch: int) -> list[dict]:
    from ..deploy import measure as B

    return B.feeds_for_timing(e.io, e.feeds, batch)


def _providers(ep: str, ep_opts: dict) -> list | None:
    from ..deploy.providers import providers_for

    return None if ep in ("cpu", "pytorch") else providers_for(ep, ep_opts.get(ep))


def _sweep(entries: list[Entry], threads: list[int], batches: list[int], o: BenchOptions, ep_opts: dict,
           notes: list[str]) -> list[dict]:
    """Time every entry at every (threads, batch), the entries of one setting interleaved; one record per
    measurement. The first setting's latencies also go into each entry's row (the report's table)."""
    from ..deploy import measure as B
    from ..deploy.providers import EPS

    records = []
    by_key = {e.key: e for e in entries}
    for n in threads:
        for e in entries:  # sessions for this thread count (the scoring pass made the first)
            if e.path is not None and n not in e.sessions:
                e.sessions = {n: _ep_session(e.path, n, o.spin, e.ep, ep_opts.get(e.ep), [], e.key)}
        for b in batches:
            timed = {}
            for e in entries:
                try:
                    feeds = _feed_at(e, b)
                except UsageError as err:  # a model whose batch is fixed: the other batches are not for it
                    if len(batches) == 1:
                        raise
                    notes.append(f"{e.key}: batch {b} left out ({err.message})")
                    continue
                if e.torch_model is not None:
                    timed[e.key] = B.torch_timed(e.torch_model, [_in_order(e.torch_model, f) for f in feeds], n)
                elif e.sessions.get(n) is not None:
                    timed[e.key] = B.onnx_timed(e.sessions[n], feeds, EPS[e.ep].device)
                    e.row.setdefault("inputs", {k: list(v.shape) for k, v in feeds[0].items()})
            say(f"timing {len(timed)} model(s) side by side: {n} thread(s), batch {b}")
            lats = B.interleave(timed, o.warmup, o.runs, o.seconds)
            for key, lat in lats.items():
                e = by_key[key]
                if lat["runs"] < o.runs:
                    notes.append(f"{key} (threads {n}, batch {b}): {lat['runs']} timed runs (the {o.seconds:g} s cap)")
                if B.disturbed(lat):
                    notes.append(f"{key} (threads {n}, batch {b}): p99 is {lat['p99'] / lat['p50']:.0f}x p50, a "
                                 "disturbed measurement (something else took the cores part of the time): rerun it "
                                 "on a quiet machine before trusting its figures")
                records.append({"model": e.model, "ep": e.ep, "threads": n, "batch": b, "latency_ms": lat,
                                "throughput_per_s": b * 1000 / max(lat["p50"], 1e-9)})
                if n == threads[0] and b == batches[0]:
                    e.row.update(latency_ms=lat, batch=b, throughput_per_s=records[-1]["throughput_per_s"])
    for e in entries:
        e.sessions = {}
    return records


def _fixed_length(run, entries: list[Entry], o: BenchOptions) -> None:
    """Text models of a Hugging Face run: also p50 at a fixed 128 tokens, batch 1 and 8 (CPU EP)."""
    from ..deploy import measure as B

    seq = _fixed_seq(run)
    if not seq:
        return
    for e in entries:
        if e.path is None or e.ep != "cpu" or "latency_ms" not in e.row \
                or not {"input_ids", "attention_mask"} <= set(e.feeds.samples):
            continue
        sess = _ep_session(e.path, e.row["threads"], o.spin, "cpu", None, [], e.key)
        e.row[f"latency_seq{seq}_ms"] = {
            f"b{b}": B.onnx_latency(sess, [_token_feed(e.feeds.samples, seq, b)], 3, min(o.runs, 50),
                                    o.seconds)["p50"] for b in FIXED_SEQ_BATCHES}


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
    """A session on `ep` (the CPU behind it), or None with a note when the EP cannot take the model, or when
    onnxruntime could not create the EP and silently gave the session the CPU instead (a row labelled with the
    EP would then be a CPU measurement)."""
    from ..deploy.providers import EPS, providers_for
    from ..deploy.runtime import open_session

    try:
        sess = open_session(path, threads, spin=spin, providers=providers_for(ep, opts))
    except EdgekdError as e:
        if ep == "cpu":
            raise
        notes.append(f"{key}: the session could not be created ({e.message}); the other EPs carry on")
        return None
    if sess.get_providers()[0] != EPS[ep].provider:
        notes.append(f"{key}: the session could not be created on {EPS[ep].provider} (onnxruntime fell back to "
                     f"{sess.get_providers()[0]}; check --ep-option {ep}:...); left out, the other EPs carry on")
        return None
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


def _predictions(prof, paths: dict, models: dict, threads: int, batch: int, shapes: dict) -> dict:
    """Predicted latency per ONNX model (CPU EP rows); the error vs measured only when the profile is this
    machine. Says which EP the prediction models, and which of the device's EPs it does not."""
    from ..latency.predictor import predict_latency

    here = prof.measured_here
    for key, path in paths.items():
        if key not in models:
            continue
        inputs = models[key].get("inputs") or shapes
        pred = predict_latency(str(path), prof, threads=threads, batch=batch, shapes=inputs).latency_ms
        models[key]["predicted_ms"] = pred
        if here:
            models[key]["prediction_error"] = pred / models[key]["latency_ms"]["p50"] - 1
    others = [ep for ep in prof.execution_providers if ep != prof.predicts]
    note = None if here else (f"{prof.name} is not this machine: compare the predictions with measurements "
                              "taken on the device (edgekd bench there)")
    return {"profile": prof.name, "is_this_machine": here, "models_ep": prof.predicts, "threads": threads,
            "batch": batch, "not_modelled": others, "note": note}


def _fastest(models: dict, who: str) -> tuple[str | None, dict | None]:
    """The fastest fp32 ONNX model of the teacher or the student (plain, or transformer-optimized)."""
    mine = (f"{who}_onnx", f"{who}_optimized") if who == "teacher" else ("student_fp32", "student_optimized", "model")
    keys = [k for k in mine if k in models]
    if not keys:
        return None, None
    key = min(keys, key=lambda k: models[k]["latency_ms"]["p50"])
    return key, models[key]


def _speedup(base: dict, new: dict):
    """How much faster `new` ran than `base` (two rows of one bench), with the interval their timed runs allow."""
    from ..deploy.measure import Speedup

    sa, sb = base["latency_ms"].get("samples_ms"), new["latency_ms"].get("samples_ms")
    if sa and sb and len(sa) >= 3 and len(sb) >= 3:
        return Speedup.measured(sa, sb)
    return Speedup.predicted(base["latency_ms"]["p50"], new["latency_ms"]["p50"])


def _summary(models: dict) -> dict:
    """Headline figures of the model the verdict ships: against the teacher (its fastest fp32 ONNX model), and
    int8 against fp32 (the fastest fp32 student), each with the speed gate's call."""
    out: dict[str, Any] = {}
    (_, t), (_, s), q = _fastest(models, "teacher"), _fastest(models, "student"), models.get("student_int8")
    name = _shipped(models)
    ship = models.get(name) if name else None
    out["shipped"] = name
    if t and ship:
        sp = _speedup(t, ship)
        out["size_ratio_vs_teacher"] = ship["size_bytes"] / t["size_bytes"]
        out["speedup_vs_teacher_p50"] = sp.ratio
        out["speedup_vs_teacher_call"] = sp.call
        out["retention"] = ship.get("retention")
    if s and q:
        sp = _speedup(s, q)
        out["int8_size_ratio"] = q["size_bytes"] / s["size_bytes"]
        out["int8_speedup_p50"] = sp.ratio
        out["int8_speedup_interval"] = [sp.low, sp.high]
        out["int8_call"] = sp.call
        out["int8_agreement_with_fp32"] = q.get("agreement_with_student_fp32")
    return out


def _shipped(models: dict) -> str | None:
    """The model the verdict ships: int8 when it is measurably faster than the fastest fp32 student (as the
    quantize gate decides), else that fp32."""
    (s_name, s), q = _fastest(models, "student"), models.get("student_int8")
    if q and (not s or _speedup(s, q).call == "faster"):
        return "student_int8"
    return s_name


def sweep_verdict(models: dict, records: list[dict], ship: str | None = None) -> list[str]:
    """What the sweep adds to the verdict: which EP to run the shipped model on, whether int8's win over fp32
    holds at every setting, and what more threads buy."""
    ship = ship or _shipped(models)
    rec = {(r["model"], r["ep"], r["threads"], r["batch"]): r for r in records}
    at = {k: r["latency_ms"]["p50"] for k, r in rec.items()}
    if ship is None or not records:
        return []
    t0, b0 = records[0]["threads"], records[0]["batch"]
    lines = []
    cpu = at.get((ship, "cpu", t0, b0))
    for ep in dict.fromkeys(r["ep"] for r in records if r["model"] == ship and r["ep"] not in ("cpu", "pytorch")):
        other = at.get((ship, ep, t0, b0))
        if cpu and other:
            sp = _speedup(rec[(ship, "cpu", t0, b0)], rec[(ship, ep, t0, b0)])
            lines.append(f"{ship} on {ep}: {sp.than('on the CPU EP')} (batch {b0}, {t0} thread(s)): "
                         + (f"deploy it on {ep}" if sp.call == "faster" else "keep the CPU EP"))
    s_name = _fastest(models, "student")[0]
    if s_name and "student_int8" in models:
        from ..deploy.measure import speed_words

        calls = {(t, b): _speedup(rec[(s_name, "cpu", t, b)], rec[("student_int8", "cpu", t, b)])
                 for (m, ep, t, b) in rec if m == "student_int8" and ep == "cpu" and (s_name, "cpu", t, b) in rec}
        first = calls.get((t0, b0))
        odd = [k for k, sp in calls.items() if first and sp.call != first.call and "same" not in (sp.call, first.call)]
        if odd:
            where = ", ".join(f"batch {b}/{t} thread(s) ({speed_words(calls[(t, b)].ratio)})" for t, b in odd)
            lines.append(f"int8 vs fp32 is not the same everywhere: int8 is {calls[odd[0]].call} at {where}")
    threads = sorted({r["threads"] for r in records})
    if len(threads) > 1 and (ship, "cpu", threads[0], b0) in at and (ship, "cpu", threads[-1], b0) in at:
        sp = _speedup(rec[(ship, "cpu", threads[0], b0)], rec[(ship, "cpu", threads[-1], b0)])
        n, one = threads[-1], threads[0]
        lines.append(f"{ship}: {n} threads are {sp.than(str(one))} at batch {b0}" + (
            "" if sp.call == "faster" else f" (too little work per run to share): run it on {one}"))
    return lines


def fixed_length_verdict(models: dict, ship: str | None = None) -> list[str]:
    """Text models: where the fixed-length timings (128 tokens) disagree with the shipped choice, say so; the
    data's own short texts can favour int8 where long ones do not."""
    from ..deploy.measure import compared

    ship, (s_name, s) = ship or _shipped(models), _fastest(models, "student")
    q = models.get("student_int8")
    if not (q and s and ship) or s_name == ship:
        return []
    key = next((k for k in q if k.startswith("latency_seq")), None)
    if key is None or key not in s:
        return []
    seq = key.removeprefix("latency_seq").removesuffix("_ms")
    lines = []
    for b, ms in q[key].items():
        fp32 = s[key].get(b)
        if fp32 and ms > fp32 * (1 + MIN_EFFECT):
            lines.append(f"at {seq} tokens, batch {b[1:]}: int8 is {compared(fp32 / ms, 'fp32')} "
                         f"({ms:.3g} vs {fp32:.3g} ms): for texts that long ship {Path(s['path']).name}")
    return lines


def verdict(models: dict, summary: dict, prediction: dict | None = None) -> list[str]:
    """The benchmark in words: which model to ship and why, against the teacher and against fp32 (a difference
    the timed runs cannot tell from noise is said as such)."""
    from ..deploy.measure import compared

    lines = []
    (t_name, t), (_, s), q = _fastest(models, "teacher"), _fastest(models, "student"), models.get("student_int8")
    name = summary["shipped"]
    if s and q:
        call = summary["int8_call"]
        agree = q.get("agreement_with_student_fp32")
        kept = f" with {agree:.1%} agreement" if agree is not None else ""
        fp32 = Path(s["path"]).name
        than = compared(summary["int8_speedup_p50"], f"fp32 ({fp32})", call)
        if call == "same":
            lines.append(f"int8: {than} here{kept}: ship {fp32} (int8 is {summary['int8_size_ratio']:.0%} of its "
                         "size: take it where size matters more than a measured speed-up)")
        elif name == "student_int8":
            lines.append(f"int8 is {than} here{kept}: ship student.int8.onnx")
        else:
            lines.append(f"int8 is {than} on this host: ship {fp32}")
    ship = models.get(name) if name else None
    if t and ship:
        kept = f", {ship['retention']:.1%} of its accuracy" if ship.get("retention") is not None else (
            f", mean cosine {ship['agreement']:.3f} to its outputs" if ship.get("agreement_metric") == "cosine"
            and ship.get("agreement") is not None else
            f", {ship['agreement']:.1%} agreement with it" if ship.get("agreement") is not None else "")
        than = compared(summary["speedup_vs_teacher_p50"], f"the teacher ({t_name})",
                        summary["speedup_vs_teacher_call"])
        lines.append(f"{name}: {than} here{kept}, "
                     f"{ship['size_bytes'] / t['size_bytes']:.0%} of its size")
    if prediction and t and ship and "predicted_ms" in ship and "predicted_ms" in t:
        lines.append(f"predicted on {prediction['profile']}: {name} "
                     f"{compared(t['predicted_ms'] / ship['predicted_ms'], 'the teacher')}")
    if not lines and "model" in models:
        m = models["model"]
        lines.append(f"model: p50 {m['latency_ms']['p50']:.3g} ms, p99 {m['latency_ms']['p99']:.3g} ms at batch "
                     f"{m['batch']} on {m['threads']} thread(s)")
    return lines

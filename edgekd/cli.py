"""The `edgekd` command line: parse options, call the Python API, render a table or one JSON object.

No logic lives here. Errors from the API arrive as EdgekdError and leave as one line on stderr
(`Error: ... (hint: ...)`), exit 2 for bad input and 1 for failures, never a traceback.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from .errors import EdgekdError

JSON_HELP = "Print one JSON object on stdout (and nothing else there)."


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgekdError as e:
            click.echo(f"Error: {e.one_line()}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted: finished artifacts are kept; half-written ones were discarded.", err=True)
            ctx.exit(130)


def _emit(obj: Any, as_json: bool, render) -> None:
    if as_json:
        click.echo(json.dumps(obj, default=str))
    else:
        render(obj)


def _console():
    from rich.console import Console

    return Console()


def _table(title: str, columns: list[str], rows: list[list[Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, justify="right" if c not in columns[:1] else "left")
    for r in rows:
        t.add_row(*["–" if v is None else str(v) for v in r])
    return t


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.2%}"


def _render_distill(d: dict) -> None:
    c = _console()
    c.print(_table(f"distilled into {d['run']} ({d['method']})", ["", "params", "MFLOPs", "test accuracy"], [
        ["teacher", f"{d['teacher_params']:,}", f"{d['teacher_flops'] / 1e6:.2f}", _pct(d["teacher_accuracy"])],
        [f"student {d['student']['family']} {d['student']['kwargs']}", f"{d['student_params']:,}",
         f"{d['student_flops'] / 1e6:.2f}", _pct(d["student_accuracy"])]]))
    retention = f"retention {d['retention']:.2%}, " if d["retention"] is not None else ""
    c.print(f"{d['param_ratio']:.1f}x fewer parameters, {retention}agreement with the teacher "
            f"{d['agreement']:.2%}, {d['epochs']} epochs in {d['seconds']:.1f} s (teacher cache: {d['cache']}). "
            f"Next: edgekd export {d['run']}")


def _render_export(d: dict) -> None:
    rows = []
    for name, m in d["models"].items():
        if "error" in m:
            rows.append([name, None, None, None, m["error"]])
            continue
        p = m.get("parity") or {}
        rows.append([name, m["path"], f"{m['size_bytes'] / 1024:.1f} KB",
                     None if not p else f"{p['max_abs_diff']:.2e}",
                     None if not p else ("ok" if p["passed"] else "FAILED") + f", top-1 {p['top1_agreement']:.2%}"])
    _console().print(_table(f"exported {d['target']}", ["model", "file", "size", "max |diff|", "parity"], rows))


def _render_quantize(d: dict) -> None:
    x = d["details"]
    rows = [[a["name"], _pct(a.get("accuracy")), _pct(a.get("agreement_with_fp32")),
             _pct(a.get("drop")), a.get("error") or ("pass" if a.get("passed") else "fail")] for a in x["attempts"]]
    c = _console()
    c.print(_table(f"int8 ({x['mode']}, preset {x['preset']} from {x['preset_source']})",
                   ["attempt", "accuracy", "agreement", "drop", "gate"], rows))
    c.print(f"wrote {d['output']}: {d['size_bytes'] / 1024:.1f} KB "
            f"({d['size_bytes'] / d['fp32_size_bytes']:.0%} of fp32), fp32 accuracy {_pct(x['fp32_accuracy'])}")


def _render_bench(report: dict) -> None:
    rows = []
    for name, m in report["models"].items():
        lat, mem = m["latency_ms"], m.get("memory") or {}
        rows.append([name, m["runtime"], f"{lat['p50']:.3f}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}",
                     f"{m['size_bytes'] / 1024:.1f}", mem.get("peak_rss_mb"), _pct(m["accuracy"]),
                     _pct(m["retention"]), _pct(m["agreement"])])
    s = report["settings"]
    c = _console()
    c.print(_table(f"bench: batch {s['batch']}, {s['threads']} thread(s)",
                   ["model", "runtime", "p50 ms", "p90 ms", "p99 ms", "size KB", "peak RSS MB", "accuracy",
                    "retention", "agreement"], rows))
    pred = report.get("prediction")
    if pred:
        for name, m in report["models"].items():
            if "predicted_ms" in m:
                err = f" ({m['prediction_error']:+.0%} vs measured p50)" if "prediction_error" in m else ""
                c.print(f"{name}: predicted {m['predicted_ms']:.3f} ms on {pred['profile']}{err}")
        if pred["note"]:
            c.print(pred["note"])
    if report["summary"]:
        c.print("  ".join(f"{k} {v:.3f}" for k, v in report["summary"].items() if v is not None))


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekd")
def cli() -> None:
    """Distil a teacher into a small, fast int8 ONNX student that fits an edge device, with proof.

    \b
    edgekd demo                                   # the whole job on scikit-learn's digits
    edgekd distill --teacher T --data D --profile raspberry-pi --out runs/x
    edgekd export runs/x && edgekd quantize runs/x && edgekd bench runs/x
    """


def _distill_options(f):
    opts = [
        click.option("--teacher", required=True,
                     help="file.py:factory, package.module:factory, a TorchScript .pt, or a state dict with --arch."),
        click.option("--arch", default=None, help="file.py:Net or module:Net that the --teacher state dict fits."),
        click.option("--data", required=True,
                     help="digits; .npz with x (and y, x_test, y_test); .npy; .csv; or an image folder DIR/CLASS/*.png."),
        click.option("--profile", default=None, help="Target device profile name or .toml path (edgekd profiles list)."),
        click.option("--student", default=None,
                     help="mlp:hidden=64, mobilenet:width=0.5, resnet:width=0.5, transformer:hidden=64,layers=2, "
                          "file.py:factory; a bare family with --profile sizes it."),
        click.option("--epochs", default=30, show_default=True, type=int),
        click.option("--temperature", default=4.0, show_default=True, type=float, help="Softmax temperature T."),
        click.option("--alpha", default=0.9, show_default=True, type=float,
                     help="Weight of the soft KD term; 1-alpha weights the hard-label CE."),
        click.option("--lr", default=3e-3, show_default=True, type=float, help="Peak learning rate (AdamW, cosine)."),
        click.option("--batch-size", default=64, show_default=True, type=int),
        click.option("--method", default="kd", show_default=True,
                     help="ce, kd, dkd, hint, at, cosine, rkd, or a weighted sum such as kd+hint:0.5."),
        click.option("--feature-map", multiple=True,
                     help="TEACHER_MODULE:STUDENT_MODULE for feature methods (repeatable; @in taps a module's "
                          "input). Default: the penultimate embeddings."),
        click.option("--val-split", default=0.0, show_default=True, type=float,
                     help="Share of training data held out for validation (early stopping, best epoch)."),
        click.option("--patience", default=0, show_default=True, type=int,
                     help="Stop after this many epochs without a better validation score (0: never)."),
        click.option("--augment/--no-augment", default=None,
                     help="Random flip/crop of images (default: on for image folders, off otherwise)."),
        click.option("--cache", type=click.Choice(["auto", "memory", "disk", "off"]), default="auto",
                     show_default=True, help="Cache teacher outputs (needs deterministic inputs)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--resume", is_flag=True, help="Continue from RUN/checkpoints/last.pt."),
        click.option("--budget-ms", default=None, type=float,
                     help="Latency budget for sizing the student (default: the profile's)."),
        click.option("--memory-mb", default=None, type=float,
                     help="Peak-memory budget for sizing the student (default: the profile's)."),
        click.option("--quantize", "quantize", type=click.Choice(["int8", "none"]), default="int8", show_default=True,
                     help="Size for the int8 model you will deploy (predicted int8 latency) or fp32."),
        click.option("--threads", default=None, type=int,
                     help="Threads on the device (default: the profile's cores); pipeline also benchmarks with it."),
        click.option("--margin", default=None, type=float,
                     help="Sizing headroom: a candidate fits when predicted * (1 + margin) <= budget "
                          "(default: the profile's calibrated median error, 0 for datasheet profiles)."),
        click.option("--init", type=click.Choice(["auto", "random"]), default="auto", show_default=True,
                     help="auto: start from the teacher's weights where the structures match (every k-th layer, "
                          "largest-norm units)."),
        click.option("--unlabeled", default=None, help="Extra inputs without labels (a transfer set): SPEC."),
        click.option("--label-column", default="label", show_default=True, help="CSV label column."),
        click.option("--image-size", default=None, type=int, help="Image folders: resize to SIZE x SIZE."),
        click.option("--channels", default=3, show_default=True, type=click.Choice(["1", "3"]),
                     help="Image folders: grayscale or RGB."),
        click.option("--mean", default="0.5", show_default=True, help="Image normalisation mean(s), comma-separated."),
        click.option("--std", default="0.5", show_default=True, help="Image normalisation std(s), comma-separated."),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory to write."),
        click.option("--json", "as_json", is_flag=True, help=JSON_HELP),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _train_kwargs(kw: dict) -> dict:
    """Click's distill options -> keyword arguments of edgekd.distill."""
    from .data import DataOptions

    def floats(name):
        try:
            return tuple(float(v) for v in kw.pop(name).split(","))
        except ValueError:
            raise click.BadParameter("comma-separated numbers, e.g. 0.485,0.456,0.406", param_hint=f"--{name}")
    opts = DataOptions(val_split=kw.pop("val_split"), label_column=kw.pop("label_column"),
                       image_size=kw.pop("image_size"), channels=int(kw.pop("channels")), mean=floats("mean"),
                       std=floats("std"), unlabeled=kw.pop("unlabeled"))
    kw["feature_map"] = list(kw.pop("feature_map"))
    kw.pop("as_json", None)
    return {**kw, "data_options": opts}


@cli.command()
@_distill_options
def distill(**kw) -> None:
    """Distil TEACHER into a small student.

    \b
    Methods (--method, combine with +, weights after a colon):
      ce      cross-entropy on labels only: the no-teacher baseline
      kd      alpha * T^2 * KL(p_T || p_S) + (1 - alpha) * CE        (Hinton et al. 2015)
      dkd     CE + decoupled target / non-target KD                  (Zhao et al. 2022)
      hint    MSE between projected student and teacher features     (FitNets)
      at      attention transfer between CNN feature maps
      cosine  1 - cos between hidden states                          (DistilBERT: kd+cosine)
      rkd     distance and angle relations of embeddings             (Park et al. 2019)
    Data without labels (an .npz with only x, or --unlabeled) is labelled by the teacher.
    With --profile and no student knobs (no --student, or a bare family such as --student mobilenet),
    the student is sized first: the largest candidate whose predicted latency and memory fit the budgets.
    Writes OUT/student.pt, manifest.json, metrics.jsonl and checkpoints/ (for --resume).
    """
    from .steps import distill as run

    as_json = kw["as_json"]
    res = run(kw.pop("teacher"), kw.pop("data"), kw.pop("out"), **_train_kwargs(kw))
    if res is not None:  # under torchrun only rank 0 reports
        _emit(res.to_dict(), as_json, _render_distill)


@cli.command()
@click.argument("target")
@click.option("--exporter", type=click.Choice(["dynamo", "torchscript"]), default="dynamo", show_default=True,
              help="torch.onnx exporter.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def export(target, exporter, as_json) -> None:
    """Export RUN's student (and teacher) to ONNX with a dynamic batch axis, parity-checked against PyTorch.

    TARGET is a run directory, or a plain .onnx file to check loads and runs in onnxruntime.
    """
    from .steps import export as run

    _emit(run(target, exporter=exporter).to_dict(), as_json, _render_export)


@cli.command()
@click.argument("target")
@click.option("--mode", type=click.Choice(["static", "dynamic"]), default="static", show_default=True,
              help="static: QDQ calibrated on training samples; dynamic: weights only.")
@click.option("--preset", default=None,
              help="s8s8, u8s8, u8s8-reduce-range or u8u8 (default: the profile's, else the host CPU's).")
@click.option("--data", default=None, help="Data SPEC for calibration and the gate (default: the run's).")
@click.option("--calib-samples", default=256, show_default=True, type=int)
@click.option("--max-drop", default=0.01, show_default=True, type=float,
              help="Largest accuracy drop (0.01 = one point) the int8 model may have; else fallbacks, else fail.")
@click.option("--output", default=None, help="Where to write (default RUN/student.int8.onnx or MODEL.int8.onnx).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def quantize(target, mode, preset, data, calib_samples, max_drop, output, as_json) -> None:
    """Quantize RUN's student.onnx (or a plain .onnx) to int8 with onnxruntime, accuracy-gated."""
    from .steps import quantize as run

    res = run(target, mode=mode, preset=preset, data=data, calib_samples=calib_samples, max_drop=max_drop,
              output=output)
    _emit(res.to_dict(), as_json, _render_quantize)


@cli.command()
@click.argument("target")
@click.option("--data", default=None, help="Data SPEC for accuracy (default: the run's).")
@click.option("--threads", default=1, show_default=True, type=int, help="intra-op threads for ORT and PyTorch.")
@click.option("--batch", default=1, show_default=True, type=int)
@click.option("--runs", default=300, show_default=True, type=int, help="Timed runs per model (capped at ~3 s).")
@click.option("--no-memory", is_flag=True, help="Skip the per-model peak-memory probe (a fresh process each).")
@click.option("--profile", default=None,
              help="Also predict each model's latency on this profile; on a profile calibrated on this machine, "
                   "report predicted vs measured.")
@click.option("--spin/--no-spin", default=True, show_default=True,
              help="onnxruntime's idle-thread spinning between runs. Calibrated profiles are measured with "
                   "--no-spin; use it to compare with their predictions at 2+ threads.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def bench(target, data, threads, batch, runs, no_memory, profile, spin, as_json) -> None:
    """Benchmark teacher (PyTorch, ONNX), student fp32 and int8: latency p50/p90/p99, size, memory,
    accuracy, retention and agreement. Writes RUN/bench.json and RUN/report.md."""
    from .steps import bench as run

    res = run(target, data=data, threads=threads, batch=batch, runs=runs, memory=not no_memory, profile=profile,
              spin=spin)
    _emit(res.report, as_json, _render_bench)


@cli.command()
@_distill_options
def pipeline(**kw) -> None:
    """distill (sized to --profile unless --student has knobs), export, quantize and bench into OUT."""
    from .workflow import run_pipeline

    as_json = kw["as_json"]
    res = run_pipeline(kw.pop("teacher"), kw.pop("data"), kw.pop("out"), **_train_kwargs(kw))
    _emit(res, as_json, lambda r: _render_bench(r["bench"]))


@cli.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--profile", default="raspberry-pi", show_default=True, help="Device profile for the int8 preset.")
@click.option("--epochs", default=40, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def demo(out, profile, epochs, as_json) -> None:
    """The whole job on scikit-learn's bundled digits: train (or reuse) a CNN teacher, distil a >10x smaller
    student, export, quantize to int8 and benchmark all of them."""
    from .workflow import run_demo

    res = run_demo(out, profile=profile, epochs=epochs)

    def render(r):
        _render_bench(r["bench"])
        _console().print(f"run directory: {out}  (manifest.json, student.pt, student.onnx, "
                         f"student.int8.onnx, bench.json, report.md)")
    _emit(res, as_json, render)


@cli.command()
@click.option("--teacher", required=True, help="Teacher SPEC (as for distill): its outputs fix the classes.")
@click.option("--arch", default=None, help="Architecture for a state-dict teacher.")
@click.option("--data", required=True, help="Data SPEC: the input shape, and calibration samples for int8.")
@click.option("--profile", required=True, help="Device profile name, alias or .toml path.")
@click.option("--student", default=None, help="Family to size: mlp, mobilenet, resnet or transformer "
                                                "(default: by input shape).")
@click.option("--budget-ms", default=None, type=float, help="Latency budget (default: the profile's).")
@click.option("--memory-mb", default=None, type=float, help="Peak-memory budget (default: the profile's).")
@click.option("--quantize", "quantize", type=click.Choice(["int8", "none"]), default="int8", show_default=True)
@click.option("--threads", default=None, type=int, help="Threads on the device (default: the profile's cores).")
@click.option("--margin", default=None, type=float,
              help="Headroom: fits when predicted * (1 + margin) <= budget (default: the calibrated median error).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def size(teacher, arch, data, profile, student, budget_ms, memory_mb, quantize, threads, margin, as_json) -> None:
    """Plan only: the student-size search for a device, without training.

    Every candidate of the family (width x depth grid) is exported untrained, quantized when int8 is
    planned, and its latency and peak memory predicted on the profile; the one with the most FLOPs that
    fits every budget is chosen."""
    from .progress import step_progress
    from .steps import size as run

    with step_progress("size") as progress:
        res = run(teacher, data, profile, arch=arch, student=student, budget_ms=budget_ms, memory_mb=memory_mb,
                  quantize=quantize, threads=threads, margin=margin, progress=progress)
    for w in res.warnings:
        click.echo(f"Warning: {w}", err=True)

    def render(r):
        c = _console()
        c.print(_table(f"{r['family']} candidates on {r['profile']} ({r['threads']} thread(s), {r['quantize']}; "
                       f"budgets {r['budget_ms']:g} ms, {r['memory_mb']:g} MB, margin {r['margin']:.0%})",
                       ["student", "params", "MFLOPs", "predicted ms", "peak MB", "fits"],
                       [[x["spec"], f"{x['params']:,}", f"{x['flops'] / 1e6:.2f}", f"{x['predicted_ms']:.3f}",
                         f"{x['predicted_peak_mb']:.1f}", "yes" if x["fits"] else x["why_not"]]
                        for x in r["candidates"]]))
        ch = r["chosen"]
        c.print(f"chosen: {ch['spec']} ({ch['params']:,} params, predicted {ch['predicted_ms']:.3f} ms). "
                f"Next: edgekd distill --student {ch['spec']} ...")
    _emit(res.to_dict(), as_json, render)


@cli.group()
def profiles() -> None:
    """Device profiles: what a target can do, and its latency/memory budgets."""


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def profiles_list(as_json) -> None:
    """List the built-in device profiles."""
    from .profiles import list_profiles

    rows = [p.summary() for p in list_profiles()]

    def render(rs):
        _console().print(_table("device profiles", ["name", "aliases", "title", "cores", "int8 preset",
                                                    "budget ms", "budget MB"],
                                [[r["name"], ", ".join(r["aliases"]), r["title"], r["cores"], r["int8_preset"],
                                  r["latency_budget_ms"], r["memory_budget_mb"]] for r in rs]))
    _emit(rows, as_json, render)


@profiles.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def profiles_show(name, as_json) -> None:
    """Show every field of profile NAME (a built-in name, an alias, or a .toml path) with its source."""
    from .profiles import FIELDS, load

    p = load(name)
    out = {**p.data, "resolved_from_alias": name if p.is_alias else None, "path": str(p.path)}

    def render(_):
        c = _console()
        if p.is_alias:
            c.print(f"{name!r} is an alias of {p.name!r}")
        c.print(_table(f"{p.name}: {p.data['title']}", ["field", "value", "source"],
                       [[f, p.get(f), p.source(f)] for f in FIELDS]))
        kernels = p.data.get("kernels", {})
        tables = {k: len(v["dims"]) for k, v in kernels.items() if isinstance(v, dict) and "dims" in v}
        cal = p.data.get("calibration") or {}
        if tables:
            c.print(f"kernel tables ({sum(tables.values())} measured kernels): "
                    + ", ".join(f"{k} {n}" for k, n in sorted(tables.items())))
        comp = kernels.get("composition") or {}
        if comp.get("threads"):
            c.print("kernels inside whole graphs take " + ", ".join(
                f"x{f:.2f} (fp32) / x{q:.2f} (int8) at {t} thread{'s' if t > 1 else ''}"
                for t, f, q in zip(comp["threads"], comp["fp32"], comp["int8"])) + " their time alone")
        stream = kernels.get("stream") or {}
        for t, mb, ns in zip(stream.get("threads", []), stream.get("mb", []), stream.get("ns_per_kb", [])):
            c.print(f"weights streamed at {t} thread{'s' if t > 1 else ''}: " + ", ".join(
                f"{m:g} MB {1.024e3 / v:.1f} GB/s" for m, v in zip(mb, ns)))
        if "median_abs_error" in cal:
            how = "cross-validated" if "fit_median_abs_error" in cal else "in-sample"
            c.print(f"calibration: median error {cal['median_abs_error']:.1%} ({how}), "
                    f"{cal.get('within_20', 0):.0%} within ±20%, {cal.get('points')} measurements, {cal.get('date')}"
                    + (f"; timed twice, {cal['repeat_within_20']:.0%} of graphs agreed within ±20%"
                       if "repeat_within_20" in cal else ""))
    _emit(out, as_json, render)


NOISY = 0.9  # calibrate warns when fewer of its graphs than this agree within 20% across two timings


@profiles.command("calibrate")
@click.option("--name", default="host", show_default=True, help="Name of the profile to write.")
@click.option("--base", default=None, help="Keep this profile's static facts (cores, ISA, RAM, budgets).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="TOML file to write.")
@click.option("--threads", multiple=True, type=int, help="Thread counts to measure (default: 1 and all cores).")
@click.option("--quick", is_flag=True, help="A quarter of the suite (a smoke test, not a calibration).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def profiles_calibrate(name, base, output, threads, quick, as_json) -> None:
    """Measure this device with onnxruntime micro-benchmarks (no torch needed) and write a calibrated
    profile: efficiencies and thread scaling fitted to the measurements, measured run and per-node
    overheads, plus kernel tables that predictions read (every kernel onnxruntime runs for the suite,
    timed alone: its shape and variant, time and thread speed-up). Whole chains and blocks are timed too:
    they give how much longer kernels take inside a graph, and the error reported is theirs. One-row GEMVs
    over 0.25-32 MB of weights give what streaming weights costs at each footprint: a model whose weights
    outgrow a cache pays for it. The whole graphs are timed twice, and calibrate warns when this machine's
    timings did not repeat (a busy or shared machine): predictions can be no closer than that."""
    from .latency.calibrate import calibrate
    from .progress import step_progress

    with step_progress("calibrate") as progress:
        res = calibrate(output, name=name, base=base, threads=list(threads) or None, quick=quick, progress=progress)
    res.pop("alongside_seconds", None)
    if res.get("repeat_within_20", 1.0) < NOISY:
        click.echo(f"Warning: timed twice, only {res['repeat_within_20']:.0%} of the whole graphs agreed within "
                   f"±20% (median difference {res['repeat_median_abs_diff']:.1%}): this machine's speed moved while "
                   "it was measured, and predictions from this profile can be no closer than that. Stop other work "
                   "(on a VM, ask for dedicated cores) and calibrate again.", err=True)

    def render(r):
        _console().print(f"wrote {r['path']}: {r['points']} measurements ({r['kernels']} of kernels timed alone) "
                         f"in {r['seconds']} s; whole chains and blocks predicted from kernels measured elsewhere: "
                         f"median error {r['median_abs_error']:.1%} ({r['within_20']:.0%} within 20%)"
                         + (f"; timed twice, {r['repeat_within_20']:.0%} of them agreed within 20%"
                            if "repeat_within_20" in r else ""))
    _emit(res, as_json, render)


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--profile", required=True, help="Device profile name, alias or .toml path.")
@click.option("--threads", default=1, show_default=True, type=int)
@click.option("--batch", default=1, show_default=True, type=int, help="Size of a symbolic batch axis.")
@click.option("--shape", multiple=True, help="Fix an input's shape: NAME=1x3x224x224 (repeatable).")
@click.option("--top", default=10, show_default=True, type=int, help="How many of the costliest nodes to list.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def predict(model, profile, threads, batch, shape, top, as_json) -> None:
    """Predict MODEL.onnx's latency on a device from its profile, without running on that device.

    The graph is fused as onnxruntime would, FLOPs and bytes are counted per node, and a per-op-class
    roofline with the profile's efficiencies, overheads and thread scaling prices each node."""
    from .latency.graph import parse_shapes
    from .latency.predictor import predict_latency

    res = predict_latency(model, profile, threads=threads, batch=batch, shapes=parse_shapes(shape), top=top)
    if res.unknown_ops:
        click.echo(f"Warning: no cost class for {', '.join(res.unknown_ops)}; priced as generic "
                   "bandwidth-bound nodes", err=True)

    def render(r):
        c = _console()
        c.print(_table(f"costliest nodes on {r['profile']} ({r['threads']} thread(s), batch {r['batch']})",
                       ["node", "op", "class", "dtype", "ms", "share", "MFLOPs", "KB"],
                       [[n["name"][:40], n["op_type"], n["class"], n["dtype"], f"{n['ms']:.4f}", f"{n['share']:.1%}",
                         f"{n['mflops']:.2f}", f"{n['kbytes']:.1f}"] for n in r["top_nodes"]]))
        c.print(f"predicted latency: {r['latency_ms']:.3f} ms (likely {r['low_ms']:.3f}-{r['high_ms']:.3f} ms; "
                f"{'calibrated' if r['calibrated'] else 'datasheet'} profile), {r['flops'] / 1e6:.1f} MFLOPs, "
                f"{r['nodes']} nodes")
    _emit(res.to_dict(), as_json, render)


def main() -> None:
    cli(prog_name="edgekd")


if __name__ == "__main__":
    sys.exit(main())

"""The `edgekd` command line: parse options, call the Python API, render a table or one JSON object.

No logic lives here: each step's options come from its declaration in `edgekd.options`. This is the one
error boundary: whatever reaches it — an EdgekdError, a bad option, or an exception from onnxruntime, onnx,
torch or the file system — leaves as one line on stderr (`Error: ... (hint: ...)`), exit 2 for bad input
and 1 for failures, never a traceback unless `--debug` (or EDGEKD_DEBUG=1).
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ..api.options import (
    PIPELINE_SKIP,
    BenchOptions,
    DistillOptions,
    ExportOptions,
    QuantizeOptions,
    RemoteOptions,
    TrustOptions,
    click_options,
)
from ..errors import EdgekdError, missing_module
from . import render as view
from .render import console, table

JSON_HELP = "Print one JSON object on stdout (and nothing else there)."


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool((root.params or {}).get("debug")) or os.environ.get("EDGEKD_DEBUG", "") not in ("", "0")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _exit_site(e: SystemExit) -> str:
    """`teacher.py:7`: the last frame of the traceback outside edgekd (the code that called sys.exit)."""
    import traceback

    here = str(Path(__file__).resolve().parents[1])
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith(here)]
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "code edgekd ran"


def _signal_wins(fn, *args):
    """fn(*args); an error after a Ctrl-C or SIGTERM is that interruption (a library that caught it mid-import
    left a "partially initialized module" error, which became an export failure with exit 1)."""
    try:
        return fn(*args)
    except Exception as e:
        if SIGNALLED and not isinstance(e, click.exceptions.Exit):
            import signal

            raise (Terminated() if SIGNALLED[0] == signal.SIGTERM else KeyboardInterrupt()) from e
        raise


class _Cli(click.Group):
    ORDER = ("demo", "distill", "size", "export", "quantize", "bench", "compare", "report", "pipeline", "predict",
             "profiles", "device", "providers")

    def list_commands(self, ctx: click.Context) -> list[str]:
        """In the order of the work (demo, distill, size, export, quantize, bench ...), not alphabetical."""
        return sorted(self.commands, key=lambda n: self.ORDER.index(n) if n in self.ORDER else len(self.ORDER))

    def invoke(self, ctx: click.Context) -> Any:
        from ..progress import activity, set_live

        set_live(True)  # progress and notes on stderr as they happen
        try:
            with activity("edgekd"):  # named after the command once click resolves it
                return _signal_wins(super().invoke, ctx)
        except EdgekdError as e:
            click.echo(f"Error: {e.one_line()}", err=True)
            ctx.exit(e.exit_code)
        except click.exceptions.Exit:
            raise
        except click.UsageError as e:
            sub = e.ctx.command_path if e.ctx else "edgekd"
            click.echo(f"Error: {e.format_message().strip()} (hint: {sub} --help lists the options)", err=True)
            ctx.exit(2)
        except click.ClickException:
            raise
        except SystemExit as e:  # edgekd never calls sys.exit inside a command: the user's code did
            click.echo(f"Error: {_exit_site(e)} called sys.exit({e.code!r}) while edgekd ran it (hint: a teacher, "
                       "student or data factory must return or raise, not exit the process)", err=True)
            ctx.exit(1)
        except KeyboardInterrupt as e:
            click.echo("Interrupted: finished artifacts are kept; half-written ones were discarded.", err=True)
            ctx.exit(Terminated.exit_code(e))
        except OSError as e:  # the file system: which file, why, what to do
            if _debug(ctx):
                raise
            from ..files import fs_error

            click.echo(f"Error: {fs_error(e, e.filename or '?').one_line()}", err=True)
            ctx.exit(1)
        except Exception as e:  # the boundary: a library's failure, as one line
            if _debug(ctx):
                raise
            missing = missing_module(e) if isinstance(e, ModuleNotFoundError) else None
            if missing is not None:  # a runtime-only install asked to train
                click.echo(f"Error: {missing.one_line()}", err=True)
                ctx.exit(missing.exit_code)
            where = f" on {e.filename}" if isinstance(e, OSError) and e.filename else ""
            click.echo(f"Error: {type(e).__name__}{where}: {_first_line(e)} (hint: rerun with --debug for the "
                       "traceback; please report it if the input looks right)", err=True)
            ctx.exit(1)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        from ..progress import relabel

        name, cmd, rest = super().resolve_command(ctx, args)
        relabel(name or "edgekd")
        return name, cmd, rest


class _Grouped(click.Command):
    """`--help` with the options in sections (Data, Student and sizing, Training ...) instead of one long list:
    the section of each option is its field's `group` in edgekd.api.options."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from ..api.options import GROUPS, group_of

        sections: dict[str, list] = {g: [] for g in [*GROUPS, "Options"]}
        for param in self.get_params(ctx):
            rec = param.get_help_record(ctx)
            if rec is not None:
                sections.setdefault(group_of(param.name), []).append(rec)
        for name, records in sections.items():
            if not records:
                continue
            with formatter.section(name):
                formatter.write_dl(records)


def _emit(obj: Any, as_json: bool, render) -> None:
    if as_json:
        click.echo(json.dumps(obj, default=str))
    else:
        render(obj)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edgekd")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error (or EDGEKD_DEBUG=1).")
def cli(debug: bool) -> None:
    """Distil a teacher into a small, fast int8 ONNX student that fits an edge device, with proof.

    \b
    edgekd demo                          # the whole job on scikit-learn's digits
    edgekd distill --teacher T --data D --profile raspberry-pi --out runs/x
    edgekd export runs/x && edgekd quantize runs/x && edgekd bench runs/x
    """
    if not debug and os.environ.get("EDGEKD_DEBUG", "") in ("", "0"):
        import warnings

        warnings.simplefilter("ignore")  # library warnings would land above edgekd's one line


def _step_args(f):
    """The arguments every distilling command takes besides its step options."""
    for o in reversed([
        click.option("--teacher", required=True,
                     help="file.py:factory, package.module:factory, a TorchScript .pt, a state dict with --arch, "
                          "or hf:FOLDER (a Hugging Face model folder)."),
        click.option("--data", required=True,
                     help="digits; .npz with x (and y, x_test, y_test) or one array per model input; .npy; .csv; "
                          "an image folder DIR/CLASS/*.png; for hf: teachers, text (.txt, .csv/.jsonl with a "
                          "text column, a datasets folder)."),
        click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory to write."),
        click.option("--json", "as_json", is_flag=True, help=JSON_HELP),
    ]):
        f = o(f)
    return f


def _warn(notes) -> None:
    """The step's notes that were not said while it ran."""
    from ..progress import unsaid

    for n in unsaid(notes):
        click.echo(f"Note: {n}", err=True)


@cli.command(cls=_Grouped, short_help="Distil a teacher into a small student (sized to --profile).")
@_step_args
@click_options(DistillOptions)
def distill(teacher, data, out, as_json, **kw) -> None:
    """Distil TEACHER into a small student.

    \b
    Methods (--method, combine with +, weights after a colon):
      ce      cross-entropy on labels only (the no-teacher baseline)
      kd      a*T^2*KL(p_T||p_S) + (1-a)*CE           Hinton et al. 2015
      dkd     CE + decoupled target/non-target KD     Zhao et al. 2022
      hint    MSE of projected student features       FitNets
      at      attention transfer between CNN maps     Zagoruyko 2017
      cosine  1 - cos between hidden states           DistilBERT: kd+cosine
      rkd     distance and angle relations            Park et al. 2019
      embed   MSE + (1 - cos) of sentence embeddings  embedders' default
      attn    KL of self-attention distributions      TinyBERT
      minilm  last-layer attention + value relations  MiniLM

    Hugging Face teachers (hf:FOLDER, or a folder with config.json) read text data (.txt, .csv, .jsonl, a
    datasets folder) with their own tokenizer; students are hf:layers=N[,hidden=H] or hf:FOLDER.

    Data without labels (an .npz with only x, or --unlabeled) is labelled by the teacher.

    With --profile and no student knobs (no --student, or a bare family such as --student mobilenet), the
    student is sized first: the largest candidate predicted 1.05x faster than the teacher (priced alike),
    with at most half its parameters, within the latency and memory budgets.

    The teacher may take several inputs (name the .npz arrays after them) and return a tuple, dict or
    ModelOutput (--output picks the one to distil). Writes OUT/student.pt, eval.npz, manifest.json,
    metrics.jsonl and checkpoints/ (for --resume).
    """
    from ..api.distill import distill as run

    res = run(teacher, data, out, **kw)
    if res is not None:  # under torchrun only rank 0 reports
        _warn(res.notes)
        _emit(res.to_dict(), as_json, view.render_distill)


@cli.command(short_help="ONNX, parity-checked; or list a .onnx's inputs and outputs.")
@click.argument("target")
@click_options(ExportOptions, TrustOptions)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def export(target, as_json, **kw) -> None:
    """Export RUN's student (and teacher) to ONNX with a dynamic batch axis, parity-checked against PyTorch.

    TARGET is a run directory, or a plain .onnx file: it is loaded and run once in onnxruntime (on generated
    inputs of the right dtypes and shapes; --shape fixes symbolic dims) and its inputs and outputs are listed.
    """
    from ..api.export import export as run

    res = run(target, **kw)
    for m in res.models.values():
        _warn(m.get("notes"))
    _emit(res.to_dict(), as_json, view.render_export)


@cli.command(short_help="int8 that keeps its accuracy and is faster, else ship fp32.")
@click.argument("target")
@click_options(QuantizeOptions)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def quantize(target, as_json, **kw) -> None:
    """Quantize RUN's student.onnx (or a plain .onnx) with onnxruntime: written only when it keeps its
    accuracy (fallbacks, then mixed precision) and is measurably faster than fp32 (timed here in interleaved
    rounds, or predicted on the target profile). Otherwise the answer is "ship fp32": nothing written, the
    decision recorded in the run, exit 0 (exit 1 with --require-faster; --allow-slower writes it anyway)."""
    from ..api.quantize import quantize as run

    res = run(target, **kw)
    _warn(res.details.get("notes"))
    _emit(res.to_dict(), as_json, view.render_quantize)


@cli.command(short_help="Latency, size, memory and accuracy of every model, per EP.")
@click.argument("target")
@click_options(BenchOptions, RemoteOptions, TrustOptions)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def bench(target, as_json, **kw) -> None:
    """Benchmark teacher (PyTorch, ONNX), student fp32 and int8 on every --ep, over every --threads x --batch:
    latency p50/p90/p99, throughput, size, memory, accuracy, retention and agreement, all on the same real
    inputs, interleaved. TARGET is a run directory (writes RUN/bench.json, RUN/report.md and RUN/report.html)
    or a plain .onnx file (with --data, or generated inputs). With --on ssh://user@host the same bench runs on
    the device (RUN/devices/HOST/ gets its bench.json and report)."""
    from ..api.bench import bench as run

    res = run(target, **kw)
    _warn(res.report.get("notes"))
    _emit(res.report, as_json, view.render_bench)


def _fraction(ctx, param, value):
    """`5%` or `0.05` -> 0.05."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a fraction (e.g. 5% or 0.05)") from None


@cli.command(short_help="Compare two bench.json files; exit 1 on a regression (CI).")
@click.argument("a")
@click.argument("b")
@click.option("--fail-if-slower", callback=_fraction, help="Exit 1 when a model of B is this much slower than "
              "in A beyond the noise of its runs: 5% or 0.05.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def compare(a, b, fail_if_slower, as_json) -> None:
    """Compare two benchmarks: B (a bench.json, or its run directory) against A, the baseline.

    Per model measured in both on the same EP at the same batch and threads: the ratio of medians B/A with a 95%
    bootstrap interval from the timed runs; "slower" or "faster" only when the interval excludes 1."""
    from ..api.compare import RegressionError
    from ..api.compare import compare as run

    try:
        res = run(a, b, fail_if_slower)
    except RegressionError as e:
        _emit(e.result.to_dict(), as_json, view.render_compare)
        click.echo(f"Regression: {e.message}", err=True)
        raise click.exceptions.Exit(1) from None
    _emit(res.to_dict(), as_json, view.render_compare)


@cli.command(cls=_Grouped, short_help="distill, export, quantize and bench in one command.")
@_step_args
@click_options(DistillOptions, ExportOptions, QuantizeOptions, BenchOptions, skip=PIPELINE_SKIP)
def pipeline(teacher, data, out, as_json, **kw) -> None:
    """distill (sized to --profile unless --student has knobs), export, quantize and bench into OUT: every
    option of each step, once (--threads is the device's, for sizing and the benchmark)."""
    from ..api.pipeline import run_pipeline

    res = run_pipeline(teacher, data, out, **kw)
    _warn(res["distill"].get("notes"))
    _warn(res["bench"].get("notes"))
    _emit(res, as_json, view.render_pipeline)


@cli.command(short_help="The whole job on scikit-learn's bundled digits.")
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Run directory (the teacher is kept in OUT/teacher/ and reused).")
@click.option("--profile", default="raspberry-pi", show_default=True, help="Device profile for the int8 preset.")
@click.option("--epochs", default=40, show_default=True, type=click.IntRange(1, 100000), help="Student epochs.")
@click.option("--force", is_flag=True, help="Replace a run in --out that the demo did not make (a demo run there is "
              "replaced anyway, its teacher reused).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def demo(out, profile, epochs, force, as_json) -> None:
    """The whole job on scikit-learn's bundled digits: train (or reuse) a CNN teacher, distil a >10x smaller
    student, export, quantize to int8 and benchmark all of them. Runs again in the same --out, reusing the
    teacher."""
    from ..api.pipeline import run_demo

    res = run_demo(out, profile=profile, epochs=epochs, force=force)

    def render(r):
        view.render_pipeline(r)
        console().print(f"run directory: {out}  (manifest.json, student.pt, student.onnx, "
                         f"student.int8.onnx, bench.json, report.md)")
    _emit(res, as_json, render)


SIZE_OPTIONS = {"arch", "profile", "student", "output", "budget_ms", "memory_mb", "speedup", "quantize", "threads",
                "margin", "task", "text_column", "label_column", "max_length", "encoding"}


@cli.command(short_help="Plan the student for a device, without training.")
@click.option("--teacher", required=True, help="Teacher SPEC (as for distill): its outputs fix the classes.")
@click.option("--data", required=True, help="Data SPEC: the input shape, and calibration samples for int8.")
@click_options(DistillOptions, only=SIZE_OPTIONS)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def size(teacher, data, profile, as_json, **kw) -> None:
    """Plan only: the student-size search for a device, without training.

    Every candidate of every family that can take the data (width x depth grids) is exported untrained,
    quantized when int8 is planned, and its latency and peak memory predicted on the profile; the one with
    the most parameters that fits every budget, at least 1.05x faster than the teacher and half its size,
    is chosen."""
    from ..api.size import size as run
    from ..progress import step_progress

    if profile is None:
        raise click.UsageError("Missing option '--profile': sizing needs a device profile")
    with step_progress("size") as progress:
        res = run(teacher, data, profile, progress=progress, **kw)
    for w in res.warnings:
        click.echo(f"Note: {w}", err=True)
    args = ["edgekd", "distill", "--teacher", teacher, *(["--arch", kw["arch"]] if kw.get("arch") else []),
            "--data", data, "--student", res.chosen["spec"], "--out", "runs/x"]
    _emit(res.to_dict(), as_json, lambda r: view.render_size(r, shlex.join(str(a) for a in args)))


@cli.command(short_help="Rebuild report.md, report.html and plots from bench.json.")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def report(target, as_json) -> None:
    """Rebuild RUN/report.md, RUN/report.html (plots inline) and the plots (quality vs latency with the Pareto
    front, latency distributions, predicted vs measured) from RUN/bench.json, without running a model. TARGET
    is a run directory or a bench.json."""
    from ..api.report import report as run

    res = run(target)
    _warn(res.notes)
    _emit(res.to_dict(), as_json, lambda r: view.console().print(
        f"wrote {r['report']}, {Path(r['html']).name}" + (f" and {', '.join(r['plots'])}" if r["plots"] else "")))


@cli.command(short_help="Execution providers here, and what brings the others.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def providers(as_json) -> None:
    """Execution providers: which this onnxruntime has (bench --ep runs on them), and what brings the others."""
    from ..deploy.providers import listing

    _emit(listing(), as_json, view.render_providers)


@cli.group(short_help="Set up a device over SSH for bench --on and calibrate --on.")
def device() -> None:
    """A real device over SSH: edgekd's runtime installed there once, so `--on` just works."""


@device.command("setup")
@click.argument("url")
@click.option("--offline", is_flag=True, help="The device has no internet: download the runtime's wheels here, "
              "for its platform and Python, and copy them over.")
@click.option("--system-site-packages", is_flag=True, help="Use the device's own onnxruntime, onnx and numpy "
              "(a vendor build: Jetson's onnxruntime-gpu, onnxruntime-openvino); install only edgekd.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def device_setup(url, offline, system_site_packages, as_json) -> None:
    """Make a venv on the device at URL (ssh://user@host[:port][?python=PATH]) with edgekd's runtime wheel and
    onnxruntime, onnx, numpy, click and rich: from the device's own package index, or --offline from wheels
    fetched here. The venv is $EDGEKD_HOME/venv there (default ~/.edgekd); `bench --on` and `profiles calibrate
    --on` then use it without ?python=, and keep the models they copy in its cache, so a second bench of the
    same models sends none of them."""
    from ..deploy.remote import setup
    from ..progress import say

    if offline and system_site_packages:
        raise click.UsageError("--offline and --system-site-packages exclude each other")
    res = setup(url, offline=offline, system_site_packages=system_site_packages, progress=say)
    _emit(res, as_json, lambda r: console().print(
        f"{r['device']}: edgekd's runtime in {r['python']} (Python {r['python_version']}, onnxruntime "
        f"{r['onnxruntime']}, {r['mode']}, {r['seconds']} s)\nNext: edgekd bench RUN --on {url}", soft_wrap=True))


@cli.group(short_help="Device profiles: list, show and calibrate them.")
def profiles() -> None:
    """Device profiles: what a target can do, and its latency/memory budgets."""


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def profiles_list(as_json) -> None:
    """List the built-in device profiles."""
    from ..profiles import list_profiles

    _emit([p.summary() for p in list_profiles()], as_json, view.render_profiles)


@profiles.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def profiles_show(name, as_json) -> None:
    """Show every field of profile NAME (a built-in name, an alias, or a .toml path) with its source."""
    from ..profiles import FIELDS, load

    p = load(name)
    out = {**p.data, "resolved_from_alias": name if p.is_alias else None, "path": str(p.path)}

    def render(_):
        c = console()
        if p.is_alias:
            c.print(f"{name!r} is an alias of {p.name!r}")
        refs: dict[str, int] = {}  # a source shared by many fields is printed once, as a numbered reference
        rows = []
        for f in FIELDS:
            if f in ("name", "title"):
                continue
            src = p.source(f)
            ref = None if src in (None, "–", "") else f"[{refs.setdefault(src, len(refs) + 1)}]"
            rows.append([f, ", ".join(v) if isinstance(v := p.get(f), list) else v, ref])
        c.print(table(f"{p.name}: {p.data['title']}", ["field", "value", "source"], rows))
        for src, n in refs.items():
            c.print(f"[{n}] {src}", soft_wrap=False, markup=False)
        kernels = p.kernels
        tables = {k: len(v["dims"]) for k, v in kernels.items() if isinstance(v, dict) and "dims" in v}
        cal = p.calibration
        if tables:
            c.print(f"kernel tables ({sum(tables.values())} measured kernels): "
                    + ", ".join(f"{k} {n}" for k, n in sorted(tables.items())))
        comp = kernels.get("composition") or {}
        if comp.get("threads"):
            c.print("kernels inside whole graphs take " + ", ".join(
                f"x{f:.2f} (fp32) / x{q:.2f} (int8) at {t} thread{'s' if t > 1 else ''}"
                for t, f, q in zip(comp["threads"], comp["fp32"], comp["int8"])) + " their time alone")
        net = kernels.get("network") or {}
        for i, t in enumerate(net.get("threads", [])):
            c.print(f"whole networks at {t} thread{'s' if t > 1 else ''} take their kernels' sum x " + ", ".join(
                f"{g} {net[g][i]:.2f}" for g in net if g != "threads"))
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
        if "whole_model_median_error" in cal:
            c.print(f"whole networks (leave one out): median error {cal['whole_model_median_error']:.1%}, "
                    f"{cal.get('whole_model_within_20', 0):.0%} within ±20%, {cal.get('whole_model_within_10', 0):.0%} "
                    f"within ±10%, bias {cal.get('whole_model_bias', 0):+.1%}, {cal.get('whole_models')} networks")
    _emit(out, as_json, render)


NOISY = 0.9  # calibrate warns when fewer of its graphs than this agree within 20% across two timings


@profiles.command("calibrate")
@click.option("--name", default="host", show_default=True, help="Name of the profile to write.")
@click.option("--base", default=None, help="Keep this profile's static facts (cores, ISA, RAM, budgets).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="TOML file to write.")
@click.option("--threads", multiple=True, type=int, help="Thread counts to measure (default: 1 and all cores).")
@click.option("--quick", is_flag=True, help="A quarter of the suite (a smoke test, not a calibration).")
@click_options(RemoteOptions)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def profiles_calibrate(name, base, output, threads, quick, on, keep, as_json) -> None:
    """Measure this device with onnxruntime micro-benchmarks (no torch needed) and write a calibrated
    profile: efficiencies and thread scaling fitted to the measurements, measured run and per-node
    overheads, plus kernel tables that predictions read (every kernel onnxruntime runs for the suite,
    timed alone: its shape and variant, time and thread speed-up). Whole chains and blocks are timed too:
    they give how much longer kernels take inside a graph, and the error reported is theirs. One-row GEMVs
    over 0.25-32 MB of weights give what streaming weights costs at each footprint: a model whose weights
    outgrow a cache pays for it. Then whole networks (CNNs, inverted-residual nets, MLPs, encoders; fp32
    and int8; batch 1 and 8): a correction per op class and cache tier (a node's bytes within one core's L2
    or not) turns the kernels' sum into what whole models take, and its leave-one-out error is reported
    (`whole_model_*` in the profile's [calibration]). The whole graphs are timed twice, and calibrate warns
    when this machine's timings did not repeat (a busy or shared machine): predictions can be no closer
    than that."""
    from ..latency.calibrate import calibrate, check_output
    from ..progress import step_progress

    check_output(output)
    if on:  # on the device: its profile comes back to OUTPUT here
        from ..deploy.remote import calibrate_on

        res = calibrate_on(on, output, keep, name=name, base=base, threads=list(threads) or None, quick=quick)
    else:
        with step_progress("calibrate") as progress:
            res = calibrate(output, name=name, base=base, threads=list(threads) or None, quick=quick,
                            progress=progress)
    res.pop("alongside_seconds", None)
    if res.get("repeat_within_20", 1.0) < NOISY:
        click.echo(f"Warning: timed twice, only {res['repeat_within_20']:.0%} of the whole graphs agreed within "
                   f"±20% (median difference {res['repeat_median_abs_diff']:.1%}): this machine's speed moved while "
                   "it was measured, and predictions from this profile can be no closer than that. Stop other work "
                   "(on a VM, ask for dedicated cores) and calibrate again.", err=True)

    def render(r):
        console().print(f"wrote {r['path']}: {r['points']} measurements ({r['kernels']} of kernels timed alone) "
                         f"in {r['seconds']} s; whole chains and blocks predicted from kernels measured elsewhere: "
                         f"median error {r['median_abs_error']:.1%} ({r['within_20']:.0%} within 20%)"
                         + (f"; {r['whole_models']} whole networks, each predicted by a fit without it: median "
                            f"error {r['whole_model_median_error']:.1%} ({r['whole_model_within_20']:.0%} within "
                            f"20%, {r['whole_model_within_10']:.0%} within 10%, bias {r['whole_model_bias']:+.1%}; "
                            f"{r['whole_model_median_error_unfitted']:.1%} from the kernels alone)"
                            if "whole_models" in r else "")
                         + (f"; timed twice, {r['repeat_within_20']:.0%} of them agreed within 20%"
                            if "repeat_within_20" in r else ""))
    _emit(res, as_json, render)


@cli.command(short_help="Predict a .onnx's latency on a device profile.")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--profile", required=True, help="Device profile name, alias or .toml path.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 4096),
              help="Threads on the device to predict for.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1, 65536),
              help="Size of a symbolic batch axis.")
@click.option("--shape", multiple=True, help="Fix an input's shape: NAME=1x3x224x224 (repeatable).")
@click.option("--top", default=10, show_default=True, type=click.IntRange(0, 10000),
              help="How many of the costliest nodes to list.")
@click.option("--int8", "int8", is_flag=True,
              help="Also predict the model quantized as `edgekd quantize` would for this profile (a temporary "
                   "copy; its mode and the profile's preset): the int8 speed-up before quantizing.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def predict(model, profile, threads, batch, shape, top, int8, as_json) -> None:
    """Predict MODEL.onnx's latency on a device from its profile, without running on that device.

    The graph is fused as onnxruntime would, FLOPs and bytes are counted per node, and a per-op-class
    roofline with the profile's efficiencies, overheads and thread scaling prices each node."""
    from ..latency.graph import parse_shapes
    from ..latency.predictor import predict_int8, predict_latency

    if int8:
        r8 = predict_int8(model, profile, threads=threads, batch=batch, shapes=parse_shapes(shape), top=top)

        def render8(r):
            c = console()
            c.print(table(f"fp32 and int8 on {r['profile']} ({r['fp32']['threads']} thread(s), batch "
                          f"{r['fp32']['batch']})", ["model", "ms", "likely ms"],
                          [[k, f"{r[k]['latency_ms']:.3f}", f"{r[k]['low_ms']:.3f}-{r[k]['high_ms']:.3f}"]
                           for k in ("fp32", "int8")], names=0))
            c.print(r["verdict"])
        _emit(r8, as_json, render8)
        return
    res = predict_latency(model, profile, threads=threads, batch=batch, shapes=parse_shapes(shape), top=top)
    if res.unknown_ops:
        click.echo(f"Warning: no cost class for {', '.join(res.unknown_ops)}; priced as generic "
                   "bandwidth-bound nodes", err=True)

    def render(r):
        c = console()
        c.print(table(f"costliest nodes on {r['profile']} ({r['threads']} thread(s), batch {r['batch']})",
                      ["node", "op", "dtype", "ms", "share", "MFLOPs"],
                      [[n["name"], n["op_type"], n["dtype"], f"{n['ms']:.4f}", f"{n['share']:.1%}",
                        f"{n['mflops']:.2f}"] for n in r["top_nodes"]], names=0))
        c.print(f"predicted latency: {r['latency_ms']:.3f} ms (likely {r['low_ms']:.3f}-{r['high_ms']:.3f} ms; "
                f"{'calibrated' if r['calibrated'] else 'datasheet'} profile), {r['flops'] / 1e6:.1f} MFLOPs, "
                f"{r['nodes']} nodes")
    _emit(res.to_dict(), as_json, render)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every half-written artifact is discarded on the way out."""

    @staticmethod
    def exit_code(e: KeyboardInterrupt) -> int:
        """The shell's convention: 128 + the signal (SIGTERM 15, SIGINT 2)."""
        return 143 if isinstance(e, Terminated) else 130


SIGNALLED: list[int] = []  # the signals received: an error after one is reported as the interruption it is


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib."):
            return True
        frame = frame.f_back
    return False


def _on_signal(signum, frame):
    """Ctrl-C or SIGTERM: raised as KeyboardInterrupt, so that every half-written artifact is discarded on the way
    out. Except in an import: a module's C++ initialisation (torch.distributed's, via pybind11) that meets the
    exception calls std::terminate (SIGABRT, exit -6, one kill in 12 during export's torch import). An import
    writes nothing, and temp files of a step already under way are removed by the next run, so leave at once."""
    import signal

    SIGNALLED.append(signum)
    if _importing(frame):
        click.echo("Interrupted.", err=True)
        _exit_now(128 + signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if hasattr(sys.stdout, "reconfigure"):  # piped into tee or a log, results still come line by line
        sys.stdout.reconfigure(line_buffering=True)
    try:
        cli(prog_name="edgekd")
    except KeyboardInterrupt as e:  # before a command started (imports): nothing was written yet
        click.echo("Interrupted.", err=True)
        _exit_now(Terminated.exit_code(e))
    except SystemExit as e:
        if e.code in (130, 143):
            _exit_now(e.code)
        raise
    finally:  # the step is over: a signal during the interpreter's teardown (0.3 s after quantize) has nothing
        for sig in (signal.SIGINT, signal.SIGTERM):  # to interrupt, and killed the process with exit -2 / -15
            signal.signal(sig, signal.SIG_IGN)


def _exit_now(code: int) -> None:
    """Leave after a signal without the interpreter's teardown: onnxruntime's and torch's worker threads may
    still be running, and finalising modules under them aborted (SIGABRT) or segfaulted. Every artifact was
    already committed or discarded on the way out, so nothing is lost by skipping it."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C does not interrupt the exit itself
        signal.signal(sig, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

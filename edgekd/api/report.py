"""`edgekd report RUN`: report.md, report.html and the plots rebuilt from bench.json (no model is run again).

Plots need matplotlib (`pip install "edgekd[report]"`; `make test` installs it): quality against latency with
the Pareto front marked (the models no other model beats on both), each model's latency distribution from its
timed runs, and predicted against measured latency when a profile predicted them. Without matplotlib the report
is written without them, and says so. report.html is the same tables with the plots inline (one file to send);
every name in it is escaped, since labels and file names come from users' files.
"""
from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_path, write_text
from .target import Result


@dataclass
class ReportResult(Result):
    report: str
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    html: str | None = None


def quality(m: dict) -> tuple[str, float] | None:
    """The figure a model is judged by: accuracy with labels, else agreement with the teacher."""
    if m.get("accuracy") is not None:
        return "accuracy", float(m["accuracy"])
    if m.get("agreement") is not None:
        return "agreement with the teacher", float(m["agreement"])
    return None


def pareto(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names of the (latency, quality) points no other point beats on both (lower latency, higher quality)."""
    front, best = [], float("-inf")
    for name, (_ms, q) in sorted(points.items(), key=lambda kv: (kv[1][0], -kv[1][1])):
        if q > best:
            front.append(name)
            best = q
    return front


def plots(report: dict, folder: Path) -> tuple[list[str], list[str]]:
    """(PNG files written into `folder`, notes): quality vs latency, and latency distributions."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        from ..errors import install_hint

        return [], [f"no plots: matplotlib is not installed ({install_hint('report')})"]
    models = report["models"]
    written = []
    points = {n: (m["latency_ms"]["p50"], quality(m)[1]) for n, m in models.items() if quality(m)}
    if points:
        front = set(pareto(points))
        label = next(quality(m)[0] for m in models.values() if quality(m))
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, (name, (ms, q)) in enumerate(sorted(points.items(), key=lambda kv: kv[1])):
            ax.scatter(ms, q, color="tab:red" if name in front else "tab:gray", zorder=3)
            # neighbours' labels alternate above and below their points, so close points do not overprint
            ax.annotate(name, (ms, q), textcoords="offset points", xytext=(5, 6 if i % 2 == 0 else -12), fontsize=8)
        line = sorted(points[n] for n in front)
        ax.plot([p[0] for p in line], [p[1] for p in line], color="tab:red", lw=1, label="Pareto front")
        ax.set_xscale("log")
        _log_axis(ax.xaxis, plt)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))  # as the tables show quality
        ax.margins(x=0.15, y=0.12)
        ax.set_xlabel("p50 latency, ms (log)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs latency: batch {report['settings']['batch']}, "
                     f"{report['settings']['threads']} thread(s)", fontsize=10)
        ax.legend(loc="best", fontsize=8)
        written.append(_save(fig, folder / "quality_latency.png"))
    runs = {n: m["latency_ms"].get("samples_ms") for n, m in models.items() if m["latency_ms"].get("samples_ms")}
    if runs:
        fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(runs)))
        ax.boxplot(list(runs.values()), vert=False, showfliers=True)
        ax.set_yticks(range(1, len(runs) + 1), list(runs))
        ax.set_xscale("log")
        _log_axis(ax.xaxis, plt)
        ax.set_xlabel("latency per run, ms (log)")
        ax.set_title("latency distributions (timed runs)", fontsize=10)
        written.append(_save(fig, folder / "latency.png"))
    pred = {n: (m["latency_ms"]["p50"], m["predicted_ms"]) for n, m in models.items() if "predicted_ms" in m}
    if pred:
        written.append(_save(_predicted_plot(plt, pred, report["prediction"]), folder / "predicted.png"))
    return written, []


def _predicted_plot(plt, pred: dict[str, tuple[float, float]], info: dict):
    """Predicted against measured p50, log-log, with the line where they agree."""
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for name, (ms, pr) in pred.items():
        ax.scatter(ms, pr, color="tab:blue", zorder=3)
        ax.annotate(name, (ms, pr), textcoords="offset points", xytext=(4, 4), fontsize=8)
    lo = min(min(v) for v in pred.values()) / 1.5
    hi = max(max(v) for v in pred.values()) * 1.5
    if info.get("is_this_machine"):  # two different machines have no line where they should agree
        ax.plot([lo, hi], [lo, hi], color="tab:gray", lw=1, ls="--", label="predicted = measured")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_axis(ax.xaxis, plt)
    _log_axis(ax.yaxis, plt)
    ax.set_xlabel("measured p50 here, ms (log)")
    ax.set_ylabel(f"predicted on {info['profile']}, ms (log)")
    ax.set_title("predicted vs measured" if info.get("is_this_machine") else
                 f"{info['profile']} (predicted) vs this host (measured)", fontsize=10)
    if info.get("is_this_machine"):
        ax.legend(loc="upper left", fontsize=8)
    return fig


def _log_axis(axis, plt) -> None:
    """A log axis with labels on its major ticks only (minor tick labels collide on a short range)."""
    axis.set_minor_formatter(plt.NullFormatter())


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path.name


def prediction_scope(pred: dict) -> str:
    """What a profile's prediction is of: which EP it models, and which of the device's EPs it does not."""
    line = f"the {pred['profile']} predictions model its {pred.get('models_ep', 'CPUExecutionProvider')}"
    if pred.get("not_modelled"):
        line += f", not its {', '.join(pred['not_modelled'])}"
    return line


def _fmt(v, f: str = "{:.2%}") -> str:
    return "–" if v is None else f.format(v)


def devices_table(here: dict | None, devices: list[dict]) -> tuple[str, list[str], list[list[str]]]:
    """Every device a run was benched on (`bench --on a,b`), side by side with this workstation: p50 ms per
    model (the CPU EP, each bench's first setting)."""
    cols = [("here", here)] if here else []
    cols += [(d.get("device", {}).get("url", "?").removeprefix("ssh://"), d) for d in devices]
    names = list(dict.fromkeys(n for _, r in cols for n in r["models"]))
    rows = [[n, *(f"{r['models'][n]['latency_ms']['p50']:.3f}" if n in r["models"] else "–" for _, r in cols)]
            for n in names]
    return "On every device, p50 ms", ["model", *(c for c, _ in cols)], rows


def device_reports(folder: Path) -> list[dict]:
    """The bench.json of each device under RUN/devices/ (bench --on wrote them)."""
    import json

    out = []
    for f in sorted((folder / "devices").glob("*/bench.json")):
        try:
            r = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(r, dict) and isinstance(r.get("models"), dict):
            out.append(r)
    return out


def tables(report: dict, devices: list[dict] = ()) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, columns, rows) of every table the report shows: the models at the first setting, the sweep, the
    fixed-length text timings, the predictions, and every device it was benched on. Markdown and HTML format the
    same tables."""
    s = report["settings"]
    out = []
    rows = []
    for name, m in report["models"].items():
        lat, mem = m["latency_ms"], m.get("memory") or {}
        rows.append([name, m.get("provider", m["runtime"]), f"{lat['p50']:.3f}", f"{lat['p90']:.3f}",
                     f"{lat['p99']:.3f}", f"{m['size_bytes'] / 1024:.1f}", _fmt(mem.get("peak_rss_mb"), "{:.0f}"),
                     _fmt(mem.get("delta_mb"), "{:.1f}"), _fmt(m["accuracy"]), _fmt(m["retention"]),
                     _fmt(m["agreement"])])
    out.append((f"Batch {s['batch']}, {s['threads']} thread(s)",
                ["model", "provider", "p50 ms", "p90 ms", "p99 ms", "size KB", "peak RSS MB", "+MB over ORT",
                 "accuracy", "retention", "agreement"], rows))
    records = report.get("records") or []
    if len({(r["threads"], r["batch"]) for r in records}) > 1:
        out.append(("Sweep: every model, EP, thread count and batch (interleaved within each setting)",
                    ["model", "EP", "threads", "batch", "p50 ms", "p90 ms", "p99 ms", "std ms", "samples/s"],
                    [[r["model"], r["ep"], str(r["threads"]), str(r["batch"]), f"{r['latency_ms']['p50']:.3f}",
                      f"{r['latency_ms']['p90']:.3f}", f"{r['latency_ms']['p99']:.3f}",
                      f"{r['latency_ms']['std']:.3f}", f"{r['throughput_per_s']:,.1f}"] for r in records]))
    fixed = [(name, k, m[k]) for name, m in report["models"].items() for k in m if k.startswith("latency_seq")]
    if fixed:
        out.append((f"At a fixed length ({fixed[0][1].removeprefix('latency_seq').removesuffix('_ms')} tokens), "
                     "p50 ms", ["model", *(f"batch {b[1:]}" for b in fixed[0][2])],
                    [[name, *(f"{v:.3f}" for v in lat.values())] for name, _, lat in fixed]))
    ws = report.get("workstation")
    if ws and ws["p50_ms"]:
        out.append((f"On {report['device']['url']} against this workstation ({ws['host']}), p50 ms",
                    ["model", "device", "workstation", "device/workstation"],
                    [[n, f"{m['latency_ms']['p50']:.3f}", f"{ws['p50_ms'][n]:.3f}",
                      f"{m['latency_ms']['p50'] / ws['p50_ms'][n]:.2f}x"]
                     for n, m in report["models"].items() if n in ws["p50_ms"]]))
    pred = report.get("prediction")
    if pred:
        out.append((f"Predicted on {pred['profile']} ({prediction_scope(pred)})",
                    ["model", "predicted ms", "measured p50 ms", "error"],
                    [[n, f"{m['predicted_ms']:.3f}", f"{m['latency_ms']['p50']:.3f}",
                      _fmt(m.get("prediction_error"), "{:+.0%}")]
                     for n, m in report["models"].items() if "predicted_ms" in m]))
    if report.get("int8_explained"):
        out.append(explain_table(report["int8_explained"]))
    if devices:
        out.append(devices_table(None if report.get("device") else report, list(devices)))
    return out


def explain_table(e: dict) -> tuple[str, list[str], list[list]]:
    """The op-group table of `quantize --explain` and bench's report: (title, columns, rows)."""
    rows = [[g["name"], f"{g['fp32_ms']:.3f}", f"{g['int8_ms']:.3f}", f"{g['int8_ms'] - g['fp32_ms']:+.3f}",
             f"{g['int8_kernels']}/{g['int8_nodes']}"] for g in e["groups"]]
    rows.append(["total", f"{e['fp32_ms']:.3f}", f"{e['int8_ms']:.3f}", f"{e['int8_ms'] - e['fp32_ms']:+.3f}", ""])
    w = e.get("wall_ms") or {}
    if w:  # the same models timed without the profiler: what its clock reads cost the sums above
        rows.append(["p50, unprofiled", f"{w['fp32']:.3f}", f"{w['int8']:.3f}", f"{w['int8'] - w['fp32']:+.3f}", ""])
    title = (f"int8 op by op, {e['where']} (onnxruntime's profiler, {e['threads']} thread(s), {e['runs']} runs "
             "each, ms per run)")
    return title, ["op group", "fp32", "int8", "change", "int8 kernels"], rows


def _host_line(report: dict) -> str:
    s, h = report["settings"], report["host"]
    flags = ", ".join(h.get("int8_flags") or []) or "none"
    where = "Host"
    if report.get("device"):
        d, o = report["device"], report.get("overhead") or {}
        where = (f"Measured on the device {d['url']} ({d.get('os', '?')}; copy {o.get('copy_s', 0):.1f} s, run "
                 f"{o.get('run_s', 0):.1f} s, check and clean-up {o.get('check_s', 0) + o.get('cleanup_s', 0):.1f} s)."
                 " Device")
    return (f"{where}: {h.get('cpu', '?')} ({h.get('cpu_count')} CPUs; int8 flags: {flags}), onnxruntime "
            f"{h['onnxruntime']}; {s['warmup']} warm-up, up to {s['runs']} timed runs and {s.get('seconds', 3):g} s "
            f"per model and setting. Created {report['created']}.")


def _md_cell(text: str) -> str:
    """A table cell as Markdown shows it: a `|` or a line break in a model or file name cannot break the table."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(report: dict, plot_files: list[str] = (), devices: list[dict] = ()) -> str:
    lines = [f"# edgekd benchmark: {report['target']}", "", _host_line(report)]
    for title, cols, rows in tables(report, devices):
        lines += ["", f"{title}:", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    if report["summary"]:
        lines += ["", "Summary (the shipped model): " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in report["summary"].items()
            if v is not None and not isinstance(v, list))]
    lines += ["", *(f"**{v}**" for v in report.get("verdict", []))]
    lines += [f"- {n}" for n in report.get("notes") or []]
    if plot_files:
        lines += ["", *(f"![{Path(p).stem}]({p})" for p in plot_files)]
    return "\n".join(lines) + "\n"


def render_html(report: dict, folder: Path, plot_files: list[str] = (), devices: list[dict] = ()) -> str:
    """One self-contained page: the verdict, the tables, the plots inline (base64 PNG), the notes."""
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>edgekd benchmark: {e(report['target'])}"
             "</title><style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:"
             "collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}"
             "td:first-child,th:first-child{text-align:left}</style></head><body>",
             f"<h1>edgekd benchmark: {e(report['target'])}</h1>", f"<p>{e(_host_line(report))}</p>"]
    parts += [f"<p><strong>{e(v)}</strong></p>" for v in report.get("verdict", [])]
    for title, cols, rows in tables(report, devices):
        parts.append(f"<h3>{e(title)}</h3><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in rows]
        parts.append("</table>")
    for p in plot_files:
        data = base64.b64encode((folder / p).read_bytes()).decode()
        parts.append(f"<p><img alt='{e(Path(p).stem)}' src='data:image/png;base64,{data}'></p>")
    if report.get("notes"):
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{e(n)}</li>" for n in report["notes"]) + "</ul>")
    return "\n".join(parts) + "\n</body></html>\n"


PLOT_FILES = ("quality_latency.png", "latency.png", "predicted.png")


def write_report(report: dict, folder: Path) -> ReportResult:
    """report.md and report.html (with the plots) and the plots, into `folder`. Without matplotlib (a runtime
    install), plots made earlier from this same bench.json are kept and linked, not dropped."""
    written, notes = plots(report, folder)
    bench = folder / "bench.json"
    if not written and notes and bench.is_file():
        kept = [n for n in PLOT_FILES if (folder / n).is_file()
                and (folder / n).stat().st_mtime >= bench.stat().st_mtime]
        if kept:
            written, notes = kept, [f"matplotlib is not installed here: kept the plots made from this bench.json "
                                    f"earlier ({', '.join(kept)})"]
    devices = device_reports(folder)
    write_text(folder / "report.md", render_markdown(report, written, devices))
    write_text(folder / "report.html", render_html(report, folder, written, devices))
    return ReportResult(str(folder / "report.md"), written, notes, html=str(folder / "report.html"))


def report(target: str | os.PathLike) -> ReportResult:
    """Rebuild RUN/report.md and its plots from RUN/bench.json (or a bench.json path: beside it)."""
    from .compare import read_bench

    path = Path(target)
    bench = read_bench(path)
    folder = path if path.is_dir() else path.parent
    return write_report(bench, folder)

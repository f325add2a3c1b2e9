"""`edgekd report RUN`: report.md and its plots rebuilt from bench.json (no model is run again).

Plots need matplotlib (`pip install "edgekd[report]"`; `make test` installs it): quality against latency with
the Pareto front marked (the models no other model beats on both), and each model's latency distribution from
its timed runs. Without matplotlib the report is written without them, and says so.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .rundir import atomic_path, write_text
from .target import Result


@dataclass
class ReportResult(Result):
    report: str
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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
    except ImportError:
        return [], ['no plots: matplotlib is not installed (pip install "edgekd[report]")']
    models = report["models"]
    written = []
    points = {n: (m["latency_ms"]["p50"], quality(m)[1]) for n, m in models.items() if quality(m)}
    if points:
        front = set(pareto(points))
        label = next(quality(m)[0] for m in models.values() if quality(m))
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for name, (ms, q) in points.items():
            ax.scatter(ms, q, color="tab:red" if name in front else "tab:gray", zorder=3)
            ax.annotate(name, (ms, q), textcoords="offset points", xytext=(4, 4), fontsize=8)
        line = sorted(points[n] for n in front)
        ax.plot([p[0] for p in line], [p[1] for p in line], color="tab:red", lw=1, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency, ms (log)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs latency: batch {report['settings']['batch']}, "
                     f"{report['settings']['threads']} thread(s)", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
        written.append(_save(fig, folder / "quality_latency.png"))
    runs = {n: m["latency_ms"].get("samples_ms") for n, m in models.items() if m["latency_ms"].get("samples_ms")}
    if runs:
        fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(runs)))
        ax.boxplot(list(runs.values()), vert=False, showfliers=True)
        ax.set_yticks(range(1, len(runs) + 1), list(runs))
        ax.set_xscale("log")
        ax.set_xlabel("latency per run, ms (log)")
        ax.set_title("latency distributions (timed runs)", fontsize=10)
        written.append(_save(fig, folder / "latency.png"))
    return written, []


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path.name


def write_report(report: dict, folder: Path) -> ReportResult:
    """report.md (with the plots linked) and the plots, into `folder`."""
    from .bench import render_markdown

    written, notes = plots(report, folder)
    md = render_markdown(report)
    if written:
        md += "\n" + "\n".join(f"![{Path(p).stem}]({p})" for p in written) + "\n"
    write_text(folder / "report.md", md)
    return ReportResult(str(folder / "report.md"), written, notes)


def report(target: str | os.PathLike) -> ReportResult:
    """Rebuild RUN/report.md and its plots from RUN/bench.json (or a bench.json path: beside it)."""
    from .compare import read_bench

    path = Path(target)
    bench = read_bench(path)
    folder = path if path.is_dir() else path.parent
    return write_report(bench, folder)

"""Renderers: one per step's result, a rich table (readable at 80 columns) plus a line of verdict."""
from __future__ import annotations

from typing import Any


def console():
    from rich.console import Console

    return Console()


def table(title: str, columns: list[str], rows: list[list[Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, justify="right" if c not in columns[:1] else "left")
    for r in rows:
        t.add_row(*["–" if v is None else str(v) for v in r])
    return t


def pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.2%}"


def render_distill(d: dict) -> None:
    c = console()
    c.print(table(f"distilled into {d['run']} ({d['method']})", ["", "params", "MFLOPs", "test accuracy"], [
        ["teacher", f"{d['teacher_params']:,}", f"{d['teacher_flops'] / 1e6:.2f}", pct(d["teacher_accuracy"])],
        [f"student {d['student']['family']} {d['student']['kwargs']}", f"{d['student_params']:,}",
         f"{d['student_flops'] / 1e6:.2f}", pct(d["student_accuracy"])]]))
    retention = f"retention {d['retention']:.2%}, " if d["retention"] is not None else ""
    c.print(f"{d['param_ratio']:.1f}x fewer parameters, {retention}agreement with the teacher "
            f"{d['agreement']:.2%}, {d['epochs']} epochs in {d['seconds']:.1f} s (teacher cache: {d['cache']}). "
            f"Next: edgekd export {d['run']}")


def render_export(d: dict) -> None:
    rows = []
    for name, m in d["models"].items():
        if "error" in m:
            rows.append([name, None, None, None, m["error"]])
            continue
        p = m.get("parity") or {}
        agree = f", {p['agreement_metric']} {p['agreement']:.2%}" if p.get("agreement") is not None else ""
        rows.append([name, m["path"], f"{m['size_bytes'] / 1024:.1f} KB",
                     None if not p else f"{p['max_abs_diff']:.2e}",
                     "ran once" if not p else ("ok" if p["passed"] else "FAILED") + agree])
    c = console()
    c.print(table(f"exported {d['target']}", ["model", "file", "size", "max |diff|", "parity"], rows))
    for m in d["models"].values():
        if "io" in m:
            c.print(io_lines(m))


def io_lines(m: dict) -> str:
    """A plain model's inputs and outputs, one per line, as `export MODEL.onnx` found them."""
    lines = [f"opset {m['opset']}, batch {m['batch']}"]
    for t in m["io"]["inputs"]:
        ran = m["ran_with"].get(t["name"])
        lines.append(f"  input  {t['name']}: {t['dtype']} {tuple(t['shape'])}"
                     + (f", ran with {tuple(ran)} per sample" if ran is not None else ""))
    for t in m["io"]["outputs"]:
        lines.append(f"  output {t['name']}: {t['dtype']} {tuple(t['shape'])} ({t['kind']}), "
                     f"got {tuple(m['output_shapes'].get(t['name'], []))}")
    return "\n".join(lines)


def render_quantize(d: dict) -> None:
    x = d["details"]
    rows = [[a["name"], pct(a.get("accuracy")), pct(a.get("agreement_with_fp32")),
             pct(a.get("drop")), a.get("error") or ("pass" if a.get("passed") else "fail")] for a in x["attempts"]]
    c = console()
    c.print(table(f"int8 ({x['mode']}, preset {x['preset']} from {x['preset_source']})",
                   ["attempt", "accuracy", "agreement", "drop", "gate"], rows))
    c.print(f"wrote {d['output']}: {d['size_bytes'] / 1024:.1f} KB "
            f"({d['size_bytes'] / d['fp32_size_bytes']:.0%} of fp32), fp32 accuracy {pct(x['fp32_accuracy'])}")


def render_bench(report: dict) -> None:
    rows = []
    for name, m in report["models"].items():
        lat, mem = m["latency_ms"], m.get("memory") or {}
        rows.append([name, m["runtime"], f"{lat['p50']:.3f}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}",
                     f"{m['size_bytes'] / 1024:.1f}", mem.get("peak_rss_mb"), pct(m["accuracy"]),
                     pct(m["retention"]), pct(m["agreement"])])
    s = report["settings"]
    c = console()
    c.print(table(f"bench: batch {s['batch']}, {s['threads']} thread(s)",
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

"""Renderers: one per step's result — a table readable at 80 columns, then the verdict in words and the next
command as it runs.

Names a user must type (models, profiles, student specs, files) are never truncated: they keep their full
width and the other columns wrap. Off a terminal the width is COLUMNS, else 80; never less than MIN_WIDTH,
so a tiny or broken COLUMNS still gives whole names (the lines may then be longer than the terminal).
"""
from __future__ import annotations

import os
from typing import Any

MIN_WIDTH = 60


def width() -> int | None:
    """None on a terminal (rich asks it); else COLUMNS when it is a sane number, else 80."""
    import sys

    try:
        cols = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        cols = 0
    if sys.stdout.isatty() and cols == 0:
        return None
    return max(MIN_WIDTH, cols or 80)


def console():
    """Plain text, no markup: names from users' models (`u8s8+fp32[/body/Conv]`) are not rich's tags."""
    from rich.console import Console

    w = width()
    if w is None:
        c = Console(markup=False)
        return c if c.width >= MIN_WIDTH else Console(width=MIN_WIDTH, markup=False)
    return Console(width=w, markup=False)


def table(title: str, columns: list[str], rows: list[list[Any]], names: int = 1, ratios: list[int] | None = None):
    """A compact table whose first `names` columns (what a user types) are never cut; the rest wrap (in
    `ratios` of the width left, when given)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    cells = [["–" if v is None else str(v) for v in r] for r in rows]
    t = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False,
              expand=ratios is not None)
    for i, c in enumerate(columns):
        if i < names:
            longest = max([len(c), *(len(r[i]) for r in cells)])
            t.add_column(c, justify="left", no_wrap=True, min_width=longest)
        else:
            numeric = all(_numeric(r[i]) for r in cells)
            t.add_column(c, justify="right" if numeric and i else "left", overflow="fold", min_width=len(c),
                         ratio=ratios[i - names] if ratios else None)
    for r in cells:
        t.add_row(*(Text(c) for c in r))  # a cell is text, never markup
    return t


def _numeric(cell: str) -> bool:
    """A number as the tables print it: 1,234 / 0.123 / 97.5% / 1.2e-06 / – for none."""
    try:
        float(cell.replace(",", "").rstrip("%x"))
        return True
    except ValueError:
        return cell == "–"


def pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.1%}"


def _closing(c, verdict, next_cmd: str | None = None) -> None:
    for line in ([verdict] if isinstance(verdict, str) else verdict or []):
        if line:
            c.print(line, soft_wrap=False)
    if next_cmd:
        c.print(f"Next: {next_cmd}", soft_wrap=True)


def render_distill(d: dict) -> None:
    from ..models.students import spec_of

    c = console()
    embed = d.get("agreement_metric") == "mean_cosine"
    flops = bool(d["teacher_flops"] or d["student_flops"])  # not counted for models with named inputs
    head = ["model", "params", *(["MFLOPs"] if flops else []), "cosine to teacher" if embed else "accuracy"]
    rows = [["teacher", f"{d['teacher_params']:,}", *([f"{d['teacher_flops'] / 1e6:.2f}"] if flops else []),
             "1.000" if embed else pct(d["teacher_accuracy"])],
            [spec_of(d["student"]), f"{d['student_params']:,}", *([f"{d['student_flops'] / 1e6:.2f}"] if flops else []),
             f"{d['agreement']:.3f}" if embed else pct(d["student_accuracy"])]]
    c.print(table(f"distilled into {d['run']} ({d['method']}, {d['epochs']} epochs, {d['seconds']:.1f} s)", head,
                  rows))
    _closing(c, d.get("verdict"), d.get("next"))


def render_export(d: dict) -> None:
    rows = []
    for name, m in d["models"].items():
        if "error" in m:
            rows.append([name, None, None, m["error"]])
            continue
        p = m.get("parity") or {}
        agree = "" if p.get("agreement") is None else (f", cosine {p['agreement']:.4f}" if p.get(
            "agreement_metric") == "cosine" else f", {p['agreement']:.1%} agree")
        rows.append([name, f"{m['size_bytes'] / 1024:.1f}", None if not p else f"{p['max_abs_diff']:.1e}",
                     ("ran once" if m.get("ran_with") or "io" not in m else "listed, not run") if not p else
                     ("ok" if p["passed"] else "FAILED") + agree])
        opt = m.get("optimized") or {}
        if opt:  # onnxruntime's transformer fusions, beside the plain export
            op = opt.get("parity") or {}
            fused = sum((opt.get("fused") or {}).values())
            rows.append([f"{name} optimized", f"{opt['size_bytes'] / 1024:.1f}" if "size_bytes" in opt else None,
                         f"{op['max_abs_diff']:.1e}" if op else None,
                         f"ok, {fused} fused ops" if op else f"not written: {opt.get('error')}"])
    c = console()
    c.print(table(f"exported {d['target']}", ["model", "KB", "max |diff|", "parity"], rows))
    for m in d["models"].values():
        if "io" in m:
            c.print(io_lines(m), soft_wrap=True)
    eps = (d.get("mobile") or {}).get("usability") or {}
    if eps:
        c.print("mobile EPs (nodes taken as is / with fixed shapes): " + "; ".join(
            f"{ep} {u['supported_nodes']}/{u['nodes']} ({u['suitability']}) / "
            f"{u['supported_nodes_with_fixed_shapes']} ({u['suitability_with_fixed_shapes']})"
            for ep, u in eps.items()))
    _closing(c, d.get("verdict"), d.get("next"))


def io_lines(m: dict) -> str:
    """A plain model's inputs and outputs, one per line, as `export MODEL.onnx` found them."""
    lines = [f"opset {m['opset']}, batch {m['batch']}"]
    axes = m.get("batch_axes") or {}
    for t in m["io"]["inputs"]:
        ran = m["ran_with"].get(t["name"])
        ax = axes.get(t["name"])
        where = "" if ax == 0 else (", fed as it is" if ax is None else f", samples on axis {ax}")
        lines.append(f"  input  {t['name']}: {t['dtype']} {tuple(t['shape'])}{where}"
                     + (f", ran with {tuple(ran)}" if ran is not None else ""))
    for t in m["io"]["outputs"]:
        got = m["output_shapes"].get(t["name"])
        lines.append(f"  output {t['name']}: {t['dtype']} {tuple(t['shape'])} ({t['kind']})"
                     + (f", got {tuple(got)}" if got is not None else ""))
    for a, b in m.get("recurrent") or []:
        lines.append(f"  recurrent: output {b} is the next call's {a}")
    return "\n".join(lines)


def render_quantize(d: dict) -> None:
    x = d["details"]
    rows = [[a["name"], len(a.get("fp32_nodes") or ()), pct(a.get("accuracy")), pct(a.get("agreement_with_fp32")),
             pct(a.get("drop")), None if a.get("speedup") is None else f"{a['speedup']:.2f}x",
             a.get("error") or ("pass" if a.get("passed") else f"needs {a['max_drop_to_pass']:g}"
                                if "max_drop_to_pass" in a else "fail")] for a in x.get("attempts", [])]
    c = console()
    wrote = f"wrote {d['output']}" if d.get("output") else "nothing written: ship fp32"
    kept = f", kept {x['chosen']}" if x.get("chosen") and x["chosen"] != x["preset"] else ""
    c.print(table(f"int8 ({x['mode']}, preset {x['preset']} from {x['preset_source']}{kept}; {wrote})",
                  ["attempt", "fp32", "acc", "agree", "drop", "speed-up", "gate"], rows))
    refused = not d.get("written") and x.get("chosen") is None and bool(x.get("attempts"))
    if x.get("explain"):
        explained(c, x["explain"])
    _closing(c, [x.get("verdict"), *([x["hint"]] if refused and x.get("hint") else [])], x.get("next"))


def explained(c, e: dict) -> None:
    from ..api.report import explain_table

    c.print(table(*explain_table(e)))
    top = ", ".join(f"{n['node']} ({n['op']}, {n['share']:.0%})" for n in e["costliest"][:3])
    c.print(f"costliest int8 nodes: {top}", soft_wrap=True)
    if e["fp32_anyway"]:
        c.print(f"ran in fp32 anyway: {', '.join(e['fp32_anyway'])}", soft_wrap=True)
    if set(e["providers"]) - {"CPUExecutionProvider"} or len(e["providers"]) > 1:
        c.print("nodes per EP: " + ", ".join(f"{k} {v}" for k, v in e["providers"].items()))
    c.print(e["reason"], soft_wrap=True)
    if e.get("caveat"):
        c.print(f"Note: {e['caveat']}", soft_wrap=True)


def render_bench(report: dict) -> None:
    from ..api.report import devices_table, prediction_scope

    if "devices" in report:  # bench --on a,b: each device's bench, then all of them side by side
        for r in report["devices"]:
            console().print(f"on {r['device']['url']}:")
            render_bench(r)
        title, cols, rows = devices_table(None, report["devices"])
        console().print(table(title, cols, rows))
        return

    rows = []
    for name, m in report["models"].items():
        lat, mem = m["latency_ms"], m.get("memory") or {}
        rows.append([name, f"{lat['p50']:.3f}", f"{lat['p99']:.3f}", f"{m['size_bytes'] / 1024:.1f}",
                     mem.get("peak_rss_mb"), pct(m["accuracy"]), pct(m["retention"]), pct(m["agreement"])])
    s = report["settings"]
    c = console()
    c.print(table(f"bench: batch {s['batch']}, {s['threads']} thread(s), {report['host'].get('cpu', '?')}",
                  ["model", "p50 ms", "p99 ms", "KB", "RSS MB", "acc", "retain", "agree"], rows))
    records = report.get("records") or []
    if len({(r["threads"], r["batch"]) for r in records}) > 1:  # a sweep: every setting, with throughput
        c.print(table("sweep: p50 per setting", ["model", "EP", "threads", "batch", "p50 ms", "p90 ms", "per s"],
                      [[r["model"], r["ep"], r["threads"], r["batch"], f"{r['latency_ms']['p50']:.3f}",
                        f"{r['latency_ms']['p90']:.3f}", f"{r['throughput_per_s']:,.0f}"] for r in records]))
    fixed = {name: (k, m[k]) for name, m in report["models"].items() for k in m if k.startswith("latency_seq")}
    if fixed:  # text models, also at a fixed number of tokens
        key, first = next(iter(fixed.values()))
        c.print(table(f"at {key.removeprefix('latency_seq').removesuffix('_ms')} tokens, p50 ms",
                      ["model", *(f"batch {b[1:]}" for b in first)],
                      [[name, *(f"{v:.3f}" for v in lat.values())] for name, (_, lat) in fixed.items()]))
    pred = report.get("prediction")
    if pred:
        for name, m in report["models"].items():
            if "predicted_ms" in m:
                err = f" ({m['prediction_error']:+.0%} vs measured p50)" if "prediction_error" in m else ""
                c.print(f"{name}: predicted {m['predicted_ms']:.3f} ms on {pred['profile']}{err}")
        c.print(prediction_scope(pred))
        if pred["note"]:
            c.print(pred["note"])
    _closing(c, report.get("verdict"))


def render_compare(r: dict) -> None:
    c = console()
    rows = [[x["model"], f"{x['a_p50_ms']:.3f}", f"{x['b_p50_ms']:.3f}", f"{x['ratio']:.3f}",
             f"{x['low']:.2f}-{x['high']:.2f}", "REGRESSION" if x.get("regression") else x["verdict"]]
            for x in r["rows"]]
    c.print(table(f"B ({r['b']}) against A ({r['a']})", ["model", "A p50", "B p50", "B/A", "95%", "verdict"],
                  rows))
    for side, names in (r.get("only_in") or {}).items():
        if names:
            c.print(f"only in {side.upper()}: {', '.join(names)}", soft_wrap=True)
    _closing(c, r.get("verdict"))


def render_size(r: dict, next_cmd: str) -> None:
    c = console()
    t = r["teacher"]
    rows = [["teacher", f"{t['params']:,}", f"{t['flops'] / 1e6:.2f}", f"{t['predicted_ms']:.3f}",
             f"{t['predicted_peak_mb']:.0f}", "–"]]
    rows += [[x["spec"], f"{x['params']:,}", f"{x['flops'] / 1e6:.2f}", f"{x['predicted_ms']:.3f}",
              f"{x['predicted_peak_mb']:.0f}", "yes" if x["fits"] else "no"] for x in r["candidates"]]
    c.print(table(f"{r['family']} students on {r['profile']} ({r['threads']} thread(s), {r['quantize']}; budgets "
                  f"{r['budget_ms']:g} ms, {r['memory_mb']:g} MB, margin {r['margin']:.0%})",
                  ["student", "params", "MFLOP", "ms", "MB", "fits"], rows))
    for x in r["candidates"]:  # why a candidate does not fit, in full (a table cell would wrap it to shreds)
        if not x["fits"]:
            c.print(f"{x['spec']} does not fit: {x['why_not']}", soft_wrap=True)
    _closing(c, r.get("verdict"), next_cmd)


def render_providers(rows: list[dict]) -> None:
    c = console()
    version = rows[0]["onnxruntime"] if rows else "?"
    c.print(table(f"execution providers (onnxruntime {version})", ["--ep", "here", "provider"],
                  [[r["name"], "yes" if r["available"] else "no", r["provider"]] for r in rows]))
    for r in rows:
        if not r["available"]:
            c.print(f"{r['name']}: {r['package']}", soft_wrap=True)


def render_profiles(rows: list[dict]) -> None:
    c = console()
    c.print(table("device profiles (int8 preset; budgets in ms and MB)",
                  ["name", "aliases", "int8", "cpus", "ms", "MB"],
                  [[r["name"], ", ".join(r["aliases"]) or None, r["int8_preset"], r["cores"],
                    f"{r['latency_budget_ms']:g}", f"{r['memory_budget_mb']:g}"] for r in rows], names=2))
    c.print("Details and sources: edgekd profiles show NAME")


def render_pipeline(r: dict) -> None:
    """Every step's verdict, then the benchmark that decides what to ship."""
    c = console()
    for line in (r["distill"].get("verdict"), r["export"].get("verdict"), r["quantize"]["details"].get("verdict")):
        if line:
            c.print(line)
    render_bench(r["bench"])

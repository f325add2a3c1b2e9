"""A corpus of bad inputs, tampered run directories, kills and races against edgekd (issue 19), and its counts.

Builds everything it needs in a temp dir: a tiny teacher and data, a distilled + exported + quantized run (copied
for every tampering), an int64 text model; then, family by family, truncated and byte-flipped ONNX files, bad
data files of every supported format, bad profiles, bad option values, tampered run directories (including a
manifest naming code that leaves a marker when imported, and a pickle that would), SIGKILL / SIGINT / SIGTERM at
several points of every step, and concurrent steps. Every case is classified:

- clean: exit 1 or 2 with one `Error: ... (hint: ...)` line on stderr (130 for Ctrl-C);
- ok: exit 0 (an input edgekd accepts: counted apart, listed);
- traceback / crash: a traceback, an escaped exception or another exit code (target 0);
- internal: an exception edgekd did not name reached the boundary (the `please report it` hint; target 0);
- hang: past the case's time limit (target 0);
- lost: a half-written artifact, a manifest that no longer parses, records lost in a race (target 0);
- executed: code from an untrusted file ran (target 0).

Usage: python benchmarks/robustness.py [--fast] [--only FAMILY] [-v]  ->  results/robustness.json
`--fast` is the subset CI runs (tests/test_robustness.py): no kills, no races, a sample of each family.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the builders the tests use

PROGRESS = re.compile(r"^[\w-]+: \d+(/\d+)? (epochs|done)|^\[[\w-]+\] |^Note: |^Warning: ")
MARKER = "EXECUTED_UNTRUSTED_CODE"


@dataclass
class Case:
    family: str
    name: str
    argv: list[str]
    limit_s: float = 60.0
    expect_ok: bool = False       # a valid input in the corpus (e.g. a control): exit 0 is right
    after: Callable[[], str | None] | None = None  # a check after the run: a problem found, or None


@dataclass
class Outcome:
    case: Case
    verdict: str
    code: int | None
    line: str
    seconds: float


@dataclass
class Corpus:
    root: Path
    cases: list[Case] = field(default_factory=list)

    def add(self, family: str, name: str, *argv, **kw) -> None:
        self.cases.append(Case(family, name, [str(a) for a in argv], **kw))


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def run_in_process(case: Case, cwd: Path) -> Outcome:
    """The CLI in this process (fast: torch is imported once), under an alarm for hangs."""
    from click.testing import CliRunner

    from edgekd.cli import cli

    runner = CliRunner()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, case.limit_s)
    t0 = time.perf_counter()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        res = runner.invoke(cli, case.argv, catch_exceptions=True)
        code, err, exc = res.exit_code, res.stderr, res.exception
    except Timeout:
        return Outcome(case, "hang", None, "", time.perf_counter() - t0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(old)
    if isinstance(exc, Timeout):
        return Outcome(case, "hang", None, "", time.perf_counter() - t0)
    return _classify(case, code, err, exc, time.perf_counter() - t0)


def _classify(case: Case, code, err: str, exc, seconds: float) -> Outcome:
    lines = [ln for ln in (err or "").splitlines() if ln.strip() and not PROGRESS.match(ln)]
    first = lines[0] if lines else ""
    if "Traceback" in (err or "") or (exc is not None and not isinstance(exc, SystemExit)):
        detail = f"{type(exc).__name__}: {exc}" if exc is not None and not isinstance(exc, SystemExit) else first
        return Outcome(case, "traceback", code, detail[:300], seconds)
    if code == 0:
        verdict = "ok"
    elif "please report it" in first:  # the boundary's line for a bug: a bad input edgekd did not name
        verdict = "internal"
    elif code in (1, 2, 130):
        verdict = "clean" if len(lines) == 1 and first.startswith(("Error: ", "Interrupted", "Regression: ")) \
            else "messy"
    else:
        verdict = "crash"
    problem = case.after() if case.after else None
    if problem:
        verdict, first = problem.split(":", 1)[0], problem
    return Outcome(case, verdict, code, (first if verdict != "messy" else " | ".join(lines))[:300], seconds)


# ---------------------------------------------------------------------------------------------------------------
# the workspace


TEACHER_PY = textwrap.dedent('''
    import pathlib
    import torch
    import torch.nn as nn

    def make():
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))

    class Exits(nn.Module):
        def forward(self, x):
            raise SystemExit(3)

    def exits():
        return Exits()

    def build():
        model = make()
        model.load_state_dict(torch.load(pathlib.Path(__file__).with_name("teacher_weights.pt"), weights_only=True))
        return model
''')

EVIL_PY = textwrap.dedent(f'''
    import pathlib
    pathlib.Path(__file__).with_name("{MARKER}").write_text("ran")
    from teacher import build  # noqa
''')


def workspace(root: Path) -> dict:
    """The tiny project every case starts from, and a finished run."""
    import real_models
    import torch
    from click.testing import CliRunner

    from edgekd.cli import cli

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 16)).astype(np.float32)
    y = (x @ rng.normal(size=(16, 3))).argmax(1).astype(np.int64)
    np.savez(root / "data.npz", x=x, y=y)
    (root / "teacher.py").write_text(TEACHER_PY)
    ns: dict = {}
    exec(TEACHER_PY, ns)
    torch.manual_seed(0)
    torch.save(ns["make"]().state_dict(), root / "teacher_weights.pt")
    r = CliRunner()
    for argv in (["distill", "--teacher", "teacher.py:build", "--data", "data.npz", "--student", "mlp:hidden=8",
                  "--epochs", "1", "--out", "run"], ["export", "run"],
                 ["quantize", "run", "--allow-slower", "--max-drop", "1"], ["bench", "run", "--runs", "5",
                                                                            "--no-memory"]):
        old = os.getcwd()
        os.chdir(root)
        try:
            res = r.invoke(cli, argv, catch_exceptions=False)
        finally:
            os.chdir(old)
        assert res.exit_code == 0, (argv, res.stderr)
    text, text_data = real_models.text(root)
    return {"run": root / "run", "text": text, "text_data": text_data, "student": root / "run" / "student.onnx",
            "int8": root / "run" / "student.int8.onnx"}


# ---------------------------------------------------------------------------------------------------------------
# the families


def onnx_files(c: Corpus, ws: dict, fast: bool) -> None:
    """Truncated, byte-flipped, empty, text, a directory, an already-int8 model, a custom-domain op, external data
    that leaves its folder: each given to export, bench, quantize and predict."""
    import onnx
    from onnx import TensorProto, helper

    good = ws["student"].read_bytes()
    d = c.root / "onnx"
    d.mkdir()
    files = {}
    for frac in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
        files[f"truncated-{frac}"] = good[:int(len(good) * frac)]
    rnd = random.Random(0)
    for i in range(12):
        b = bytearray(good)
        for _ in range(1 + i):
            b[rnd.randrange(len(b))] ^= 0xFF
        files[f"flipped-{i}"] = bytes(b)
    files["text"] = b"this is not a model\n"
    files["utf16"] = "not a model".encode("utf-16")
    for name, data in files.items():
        (d / f"{name}.onnx").write_bytes(data)
    (d / "dir.onnx").mkdir()
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]),
              d / "custom-op.onnx")
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4], vals=[0.0] * 16)
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("float_data")
    for k, v in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "64")):
        e = w.external_data.add()
        e.key, e.value = k, v
    g2 = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    onnx.save(helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17)]), d / "traversal.onnx")
    shutil.copy(ws["int8"], d / "already-int8.onnx")
    for name, shape in (("huge-input", [1, 2**40]), ("huge-batch", [2**40, 4]), ("huge-product", [1, 2**20, 2**20])):
        g3 = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                               [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
        onnx.save(helper.make_model(g3, opset_imports=[helper.make_opsetid("", 13)]), d / f"{name}.onnx")
    names = sorted(p.name for p in d.iterdir())
    if fast:
        names = [n for n in names if n.startswith(("truncated-0.5", "flipped-3", "text", "dir", "custom", "trav",
                                                   "already", "huge-input"))]
    for n in names:
        p = d / n
        c.add("onnx", f"export {n}", "export", p, limit_s=60)
        c.add("onnx", f"bench {n}", "bench", p, "--runs", "3", "--no-memory", limit_s=60)
        c.add("onnx", f"quantize {n}", "quantize", p, "--mode", "dynamic", "--output", d / f"q-{n}", limit_s=120)
        c.add("onnx", f"predict {n}", "predict", p, "--profile", "raspberry-pi-4", limit_s=60)


def data_files(c: Corpus, ws: dict, fast: bool) -> None:
    """Bad data of every supported format, for distill (training) and bench of a plain .onnx (scoring)."""
    d = c.root / "data"
    d.mkdir()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 16)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    bad: dict[str, Callable[[Path], None]] = {
        "nan.npz": lambda p: np.savez(p, x=np.full((40, 16), np.nan, np.float32), y=y),
        "inf.npz": lambda p: np.savez(p, x=np.full((40, 16), np.inf, np.float32), y=y),
        "huge-label.npz": lambda p: np.savez(p, x=x, y=np.full(40, 10**12)),
        "negative-label.npz": lambda p: np.savez(p, x=x, y=-np.ones(40, np.int64) * 5),
        "float-label.npz": lambda p: np.savez(p, x=x, y=y + 0.5),
        "one-sample.npz": lambda p: np.savez(p, x=x[:1], y=y[:1]),
        "one-unlabeled.npz": lambda p: np.savez(p, x=x[:1]),
        "empty.npz": lambda p: np.savez(p, x=x[:0], y=y[:0]),
        "wrong-width.npz": lambda p: np.savez(p, x=x[:, :5], y=y),
        "wrong-rank.npz": lambda p: np.savez(p, x=x[:, :, None, None], y=y),
        "mismatched-y.npz": lambda p: np.savez(p, x=x, y=y[:10]),
        "string-x.npz": lambda p: np.savez(p, x=np.array(["a"] * 40), y=y),
        "object-x.npz": lambda p: np.save(p.with_suffix(".npy"), np.array([{"a": 1}] * 3, dtype=object)),
        "no-x.npz": lambda p: np.savez(p, z=x),
        "missing-top-class.npz": lambda p: np.savez(p, x=x, y=np.where(y == 2, 1, y)),
        "missing-low-class.npz": lambda p: np.savez(p, x=x, y=np.where(y == 0, 1, y)),
        "truncated.npz": lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 20),
        "zero-d.npy": lambda p: np.save(p, np.float32(3.0)),
        "latin1.csv": lambda p: p.write_bytes("f1,f2,label\n1,2,caf\xe9\n".encode("latin-1")),
        "no-label.csv": lambda p: p.write_text("f1,f2\n1,2\n3,4\n"),
        "ragged.csv": lambda p: p.write_text("f1,f2,label\n1,2,0\n3\n"),
        "text-features.csv": lambda p: p.write_text("f1,f2,label\na,b,0\nc,d,1\n"),
        "empty.csv": lambda p: p.write_text(""),
        "nan.csv": lambda p: p.write_text("f1,f2,label\nnan,1,0\ninf,2,1\n"),
        "broken.jsonl": lambda p: p.write_text('{"text": "a", "label": 0}\n{not json\n'),
        "empty.txt": lambda p: p.write_text(""),
        "binary.txt": lambda p: p.write_bytes(b"\xff\xfe\x00\x01" * 10),
        "empty-folder": lambda p: p.mkdir(),
        "corrupt-image-folder": lambda p: (p.joinpath("cat").mkdir(parents=True),
                                           p.joinpath("cat", "a.png").write_bytes(b"\x89PNG garbage")),
        "missing.npz": lambda p: None,
    }
    names = sorted(bad)
    if fast:
        names = [n for n in names if n in ("nan.npz", "huge-label.npz", "one-unlabeled.npz", "latin1.csv",
                                           "truncated.npz", "missing-low-class.npz", "empty-folder")]
    for name, p in _specials(d).items():  # refused before they are opened
        c.add("data", f"distill --data {name}", "distill", "--teacher", "teacher.py:build", "--data", p, "--student",
              "mlp:hidden=4", "--epochs", "1", "--out", c.root / "outs" / f"special-{p.name}", limit_s=20)
        c.add("data", f"bench --data {name}", "bench", ws["student"], "--data", p, "--runs", "3", "--no-memory",
              limit_s=20)
    for name in names:
        p = d / name
        bad[name](p)
        if name == "object-x.npz":
            p = p.with_suffix(".npy")
        out = c.root / "outs" / f"distill-{name}"
        c.add("data", f"distill {name}", "distill", "--teacher", "teacher.py:build", "--data", p, "--student",
              "mlp:hidden=4", "--epochs", "1", "--out", out, limit_s=120, after=_no_half_files(out))
        c.add("data", f"bench --data {name}", "bench", ws["student"], "--data", p, "--runs", "3", "--no-memory")
        c.add("data", f"quantize --data {name}", "quantize", ws["student"], "--data", p, "--mode", "static",
              "--output", c.root / "outs" / f"q-{name}.onnx", limit_s=120)


def profiles(c: Corpus, ws: dict, fast: bool) -> None:
    """Bad profile files: syntax, encodings, nesting, fields of the wrong type or range, bad calibration."""
    from edgekd.profiles import load

    base = Path(load("raspberry-pi-4").path).read_text()
    d = c.root / "profiles"
    d.mkdir()
    variants = {
        "syntax": base + "\n[[[broken\n",
        "empty": "",
        "nested": "a = " + "[" * 5000 + "]" * 5000 + "\n",
        "nested-tables": "".join(f"[{'.'.join(['t'] * i)}]\n" for i in range(1, 400)),
        "cores-zero": re.sub(r"cores = \d+", "cores = 0", base),
        "cores-string": re.sub(r"cores = \d+", 'cores = "four"', base),
        "cores-huge": re.sub(r"cores = \d+", "cores = 100000000", base),
        "freq-nan": re.sub(r"freq_ghz = [\d.]+", "freq_ghz = nan", base),
        "freq-inf": re.sub(r"freq_ghz = [\d.]+", "freq_ghz = inf", base),
        "bandwidth-negative": re.sub(r"bandwidth_gbps = [\d.]+", "bandwidth_gbps = -4.0", base),
        "unknown-isa": base.replace('"neon"', '"neon", "warp"'),
        "unknown-ep": base.replace('"CPUExecutionProvider"', '"WarpExecutionProvider"', 1),
        "no-sources": base.split("[sources]")[0],
        "calibration-strings": base + '\n[calibration]\nmedian_abs_error = "low"\nhost = 5\n',
        "calibration-nan": base + "\n[calibration]\nmedian_abs_error = nan\n",
        "kernels-garbage": base + '\n[kernels]\nconv = "yes"\n',
        "models-ep-unknown": base.replace('models_ep = "CPUExecutionProvider"', 'models_ep = "GPU"'),
        "budgets-missing": base.split("[budgets]")[0] + base.split("[budgets]")[1].split("\n[", 1)[1]
        if "[budgets]" in base else base,
    }
    for name, text in variants.items():
        (d / f"{name}.toml").write_text(text)
    (d / "latin1.toml").write_bytes(base.encode("utf-8") + "\n# caf\xe9\n".encode("latin-1"))
    (d / "latin1-value.toml").write_bytes(base.replace('name = "', 'name = "caf\xe9 ', 1).encode("latin-1"))
    (d / "binary.toml").write_bytes(bytes(range(256)) * 8)
    (d / "deep-inline.toml").write_text("a = " + "{b = " * 100000 + "1" + "}" * 100000 + "\n")
    (d / "deep-array.toml").write_text("a = " + "[" * 100000 + "]" * 100000 + "\n")
    os.mkfifo(d / "fifo.toml")
    (d / "dir.toml").mkdir()
    names = sorted(p.name for p in d.iterdir())
    if fast:
        names = [n for n in names if n.split(".")[0] in ("syntax", "nested", "cores-string", "freq-nan",
                                                           "calibration-strings", "latin1", "dir", "binary",
                                                           "deep-array", "fifo")]
    for n in names:
        p = d / n
        c.add("profile", f"profiles show {n}", "profiles", "show", p, limit_s=20)
        c.add("profile", f"predict --profile {n}", "predict", ws["student"], "--profile", p)
        c.add("profile", f"bench --profile {n}", "bench", ws["student"], "--profile", p, "--runs", "3",
              "--no-memory")


OPTION_VALUES = ["nan", "inf", "-inf", "-1", "0", "1e30", "abc", "", "99999999999999"]
OPTIONS = {
    "distill": ["--epochs", "--temperature", "--alpha", "--lr", "--batch-size", "--val-split", "--patience",
                "--budget-ms", "--memory-mb", "--threads", "--margin", "--max-length", "--image-size", "--seed"],
    "quantize": ["--calib-samples", "--max-drop", "--threads"],
    "bench": ["--threads", "--batch", "--runs", "--warmup", "--seconds"],
    "export": ["--opset"],
    "predict": ["--threads", "--batch", "--top"],
}


def options(c: Corpus, ws: dict, fast: bool) -> None:
    """Every numeric option with NaN, inf, negative, zero, absurd and non-numeric values; and named bad choices."""
    values = OPTION_VALUES if not fast else ["nan", "-1", "abc", "99999999999999"]
    for cmd, flags in OPTIONS.items():
        for flag in flags:
            for v in values:
                out = c.root / "outs" / f"opt-{cmd}{flag}{v}"
                base = {"distill": ["distill", "--teacher", "teacher.py:build", "--data", "data.npz", "--student",
                                    "mlp:hidden=4", "--epochs", "1", "--out", out],
                        "quantize": ["quantize", ws["student"], "--output", f"{out}.onnx"],
                        "bench": ["bench", ws["student"], "--runs", "3", "--no-memory"],
                        "export": ["export", ws["run"]],
                        "predict": ["predict", ws["student"], "--profile", "raspberry-pi-4"]}[cmd]
                c.add("option", f"{cmd} {flag} {v!r}", *base, flag, v, limit_s=90)
    more = [("distill --device cuda", ["distill", "--teacher", "teacher.py:build", "--data", "data.npz",
                                       "--student", "mlp:hidden=4", "--epochs", "1", "--device", "cuda",
                                       "--out", c.root / "outs" / "cuda"]),
            ("bench --ep warpdrive", ["bench", ws["student"], "--ep", "warpdrive"]),
            ("bench --shape junk", ["bench", ws["student"], "--shape", "x=axb"]),
            ("quantize --output DIR", ["quantize", ws["student"], "--output", c.root]),
            ("compare missing", ["compare", "nope.json", "nope.json"]),
            ("distill --method nope", ["distill", "--teacher", "teacher.py:build", "--data", "data.npz",
                                       "--method", "nope", "--out", c.root / "outs" / "m"]),
            ("distill --student nope", ["distill", "--teacher", "teacher.py:build", "--data", "data.npz",
                                        "--student", "nope:x=1", "--out", c.root / "outs" / "s"]),
            *[(f"distill --student {spec}", ["distill", "--teacher", "teacher.py:build", "--data", "data.npz",
                                              "--student", spec, "--epochs", "1", "--out", c.root / "outs" / spec])
              for spec in ("mlp:hidden=100000000", "mlp:hidden=1000000,depth=1000", "transformer:hidden=100000",
                           "mobilenet:width=10000", "resnet:width=10000", "mlp:hidden=0", "mlp:depth=-1")],
            ("distill --seed 2**40", ["distill", "--teacher", "teacher.py:build", "--data", "data.npz",
                                      "--student", "mlp:hidden=4", "--epochs", "1", "--seed", str(2**40),
                                      "--out", c.root / "outs" / "seed"]),
            ("distill teacher calls sys.exit", ["distill", "--teacher", "teacher.py:exits", "--data", "data.npz",
                                                "--student", "mlp:hidden=4", "--epochs", "1", "--out",
                                                c.root / "outs" / "exits"]),
            ("profiles calibrate --threads 100000", ["profiles", "calibrate", "--threads", "100000", "--quick",
                                                      "--output", c.root / "outs" / "cal.toml"]),
            ("unknown command", ["frobnicate"]), ("unknown option", ["bench", ws["student"], "--frobnicate"])]
    for name, argv in more:
        c.add("option", name, *argv, limit_s=90)


def tampered_runs(c: Corpus, ws: dict, fast: bool) -> None:
    """Copies of the finished run, each broken one way, given to export, quantize, bench and report."""
    import pickle

    src = ws["run"]
    root = c.root / "runs"
    root.mkdir()

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {c.root / MARKER}",))

    def manifest_edit(fn):
        def edit(run: Path):
            m = json.loads((run / "manifest.json").read_text())
            fn(m, run)
            (run / "manifest.json").write_text(json.dumps(m))
        return edit

    def evil(m, run):
        shutil.copy(c.root / "teacher.py", run / "teacher.py")
        shutil.copy(c.root / "teacher_weights.pt", run / "teacher_weights.pt")
        (run / "evil.py").write_text(EVIL_PY.replace("from teacher import build", "from teacher import build"))
        m["steps"]["distill"]["teacher"]["spec"] = f"{run / 'evil.py'}:build"

    def forged(**fields):  # the teacher record of a signed run, edited: none of these may run code
        def edit(m, run):
            (run / "conftest.py").write_text(f"import pathlib; pathlib.Path({str(c.root / MARKER)!r}).touch()\n")
            (run / "evil.PT").write_bytes(pickle.dumps(Boom()))
            m["steps"]["distill"]["teacher"].update({k: v.replace("RUN", str(run)) if isinstance(v, str) else v
                                                     for k, v in fields.items()})
        return manifest_edit(edit)

    def lock_symlink(run: Path):
        victim = run.parent / f"{run.name}.victim"
        victim.write_text("x" * 32)
        (run / ".edgekd.lock").unlink(missing_ok=True)
        (run / ".edgekd.lock").symlink_to(victim)

    def victim_kept(run: Path):
        victim = run.parent / f"{run.name}.victim"

        def check() -> str | None:
            if not victim.exists() or victim.read_text() == "x" * 32:
                return executed()
            return "lost: the file the run's lock links to was changed"
        return check

    tamper: dict[str, Callable[[Path], None]] = {
        "forged-spec-stdlib": forged(spec="os:abort"),
        "forged-arch-stdlib": forged(arch="os:abort"),
        "forged-spec-site-packages": forged(spec="pytest:main"),
        "forged-kind-pickle": forged(kind="pickle", trust_pickle=True),
        "forged-teacher-PT": forged(spec="RUN/evil.PT", kind="pickle", trust_pickle=True),
        "lock-symlink": lock_symlink,
        "manifest-missing": lambda r: (r / "manifest.json").unlink(),
        "manifest-truncated": lambda r: (r / "manifest.json").write_text((r / "manifest.json").read_text()[:50]),
        "manifest-latin1": lambda r: (r / "manifest.json").write_bytes(b'{"steps": {"caf\xe9": 1}}'),
        "manifest-list": lambda r: (r / "manifest.json").write_text("[]"),
        "manifest-deep": lambda r: (r / "manifest.json").write_text("[" * 100000 + "]" * 100000),
        "manifest-no-distill": manifest_edit(lambda m, r: m["steps"].pop("distill")),
        "manifest-steps-string": manifest_edit(lambda m, r: m.__setitem__("steps", "x")),
        "manifest-teacher-missing": manifest_edit(lambda m, r: m["steps"]["distill"].pop("teacher")),
        "manifest-evil-teacher": manifest_edit(evil),
        "student-pt-garbage": lambda r: (r / "student.pt").write_bytes(b"garbage"),
        "student-pt-pickle": lambda r: (r / "student.pt").write_bytes(pickle.dumps(Boom())),
        "last-pt-pickle": lambda r: (r / "checkpoints" / "last.pt").write_bytes(pickle.dumps(Boom())),
        "eval-npz-garbage": lambda r: (r / "eval.npz").write_bytes(b"garbage"),
        "eval-npz-missing": lambda r: (r / "eval.npz").unlink(),
        "student-onnx-missing": lambda r: (r / "student.onnx").unlink(),
        "student-onnx-changed": lambda r: (r / "student.onnx").write_bytes((r / "student.onnx").read_bytes()[:-3]),
        "int8-garbage": lambda r: (r / "student.int8.onnx").write_bytes(b"garbage"),
        "bench-json-garbage": lambda r: (r / "bench.json").write_text("{"),
        "run-is-file": lambda r: (shutil.rmtree(r), r.write_text("x")),
    }
    names = sorted(tamper)
    if fast:
        names = [n for n in names if n in ("manifest-truncated", "manifest-latin1", "manifest-evil-teacher",
                                           "student-pt-pickle", "student-onnx-changed", "eval-npz-garbage")]
    executed = _not_executed(c.root)
    for name in names:
        for step in ("export", "quantize", "bench", "report", "distill"):  # each step on a copy of its own
            run = root / f"{name}-{step}"
            shutil.copytree(src, run)
            tamper[name](run)
            argv = {"export": ["export", run], "quantize": ["quantize", run, "--allow-slower", "--max-drop", "1"],
                    "bench": ["bench", run, "--runs", "3", "--no-memory"], "report": ["report", run],
                    "distill": ["distill", "--teacher", "teacher.py:build", "--data", "data.npz", "--student",
                                "mlp:hidden=8", "--epochs", "2", "--out", run, "--resume", "--force"]}[step]
            c.add("run", f"{step} {name}", *argv, limit_s=120, after=victim_kept(run))


def forged_benches(c: Corpus, ws: dict, fast: bool) -> None:
    """bench.json files forged or broken the ways a CI artifact can be, each compared against the real one (both
    ways) with --fail-if-slower: none may pass as a comparison or reach the boundary as an internal error."""
    real = json.loads((ws["run"] / "bench.json").read_text())
    d = c.root / "benches"
    d.mkdir()

    def rec(fn):
        def make() -> str:
            r = json.loads(json.dumps(real))
            for x in r["records"]:
                fn(x)
            return json.dumps(r)
        return make

    def lat(key, value):
        return rec(lambda x: x["latency_ms"].__setitem__(key, value))

    forged: dict[str, Callable[[], str | bytes]] = {
        "records-ints": lambda: json.dumps({**real, "records": [1, 2, 3]}),
        "records-string": lambda: json.dumps({**real, "records": "many"}),
        "no-latency": rec(lambda x: x.pop("latency_ms")),
        "latency-list": rec(lambda x: x.__setitem__("latency_ms", [1.0])),
        "p50-string": lat("p50", "fast"),
        "p50-nan": lambda: rec(lambda x: x["latency_ms"].__setitem__("p50", float("nan")))(),
        "p50-negative": lat("p50", -3.0),
        "p50-zero": lat("p50", 0),
        "p50-bool": lat("p50", True),
        "samples-string": lat("samples_ms", "1,2,3"),
        "samples-nested": lat("samples_ms", [[1.0, 2.0], [3.0]]),
        "samples-nan": lambda: rec(lambda x: x["latency_ms"].__setitem__("samples_ms", [1.0, float("nan"), 2.0]))(),
        "samples-negative": lat("samples_ms", [1.0, -2.0, 3.0]),
        "samples-million": lat("samples_ms", [1.0 + (i % 7) * 0.01 for i in range(10**6)]),
        "model-nested": rec(lambda x: x.__setitem__("model", {"a": [1]})),
        "threads-string": rec(lambda x: x.__setitem__("threads", "all")),
        "schema-old": lambda: json.dumps({**real, "schema_version": 1}),
        "top-array": lambda: "[]",
        "top-null": lambda: "null",
        "deep": lambda: "[" * 100000 + "]" * 100000,
        "deep-object": lambda: '{"a": ' * 100000 + "1" + "}" * 100000,
        "truncated": lambda: json.dumps(real)[:200],
        "latin1": lambda: json.dumps(real).encode("utf-8").replace(b'"verdict"', b'"verdict_caf\xe9"'),
        "binary": lambda: bytes(range(256)) * 8,
        "empty": lambda: "",
    }
    names = sorted(forged)
    if fast:
        names = [n for n in names if n in ("records-ints", "p50-nan", "p50-negative", "samples-nested", "deep",
                                           "latin1", "samples-million")]
    good = ws["run"] / "bench.json"
    for name in names:
        p = d / f"{name}.json"
        body = forged[name]()
        p.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
        c.add("compare", f"compare real {name}", "compare", good, p, "--fail-if-slower", "5%")
        c.add("compare", f"compare {name} real", "compare", p, good, "--fail-if-slower", "5%")
    for name, make in _specials(d).items():
        c.add("compare", f"compare {name}", "compare", good, make, limit_s=20)


def _specials(d: Path) -> dict[str, Path]:
    """A FIFO nobody writes, a listening Unix socket's file and a character device: files that are not files
    (reading the first hangs, the last never ends)."""
    import socket

    fifo, sock = d / "fifo.json", d / "sock.json"
    if not fifo.exists():
        os.mkfifo(fifo)
    if not sock.exists():
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(sock))
        s.close()
    return {"fifo": fifo, "socket": sock, "/dev/zero": Path("/dev/zero")}


def _without_unk(p: Path) -> None:
    """A tokenizer.json whose WordPiece vocabulary lacks the [UNK] it declares."""
    j = json.loads((p / "tokenizer.json").read_text())
    j["model"]["vocab"].pop("[UNK]")
    (p / "tokenizer.json").write_text(json.dumps(j))


def hf_folders(c: Corpus, ws: dict, fast: bool) -> None:
    """Hugging Face folders broken the ways received ones are: config.json of the wrong JSON shape, nested deep,
    fields of the wrong type, an empty or foreign config (a teacher whose weights would not load), truncated or
    garbage safetensors, a vocabulary without [UNK], sentence-transformers files of the wrong shape; each given to
    distill and size."""
    import hf_models

    d = c.root / "hf"
    good = hf_models.classifier(d / "good-classifier", layers=2, hidden=16, train=False)
    emb = hf_models.embedder(d / "good-embedder", layers=2, hidden=16)
    data = hf_models.write_csv(d / "text.csv", hf_models.texts(60))

    def cfg(fn):
        def edit(p: Path):
            m = json.loads((p / "config.json").read_text())
            (p / "config.json").write_text(json.dumps(fn(m)))
        return edit

    def write(name, text):
        return lambda p: (p / name).write_text(text) if isinstance(text, str) else (p / name).write_bytes(text)

    st = (good / "model.safetensors").read_bytes()
    bad: dict[str, tuple[Path, Callable[[Path], None]]] = {
        "config-array": (good, write("config.json", "[1, 2]")),
        "config-null": (good, write("config.json", "null")),
        "config-string": (good, write("config.json", '"bert"')),
        "config-deep": (good, write("config.json", "[" * 100000 + "]" * 100000)),
        "config-deep-dict": (good, write("config.json", '{"a": ' * 100000 + "1" + "}" * 100000)),
        "config-empty": (good, write("config.json", "{}")),
        "config-gpt2": (good, cfg(lambda m: {**m, "model_type": "gpt2", "architectures": ["GPT2Model"]})),
        "config-latin1": (good, write("config.json", b'{"model_type": "bert", "x": "caf\xe9"}')),
        "hidden-string": (good, cfg(lambda m: {**m, "hidden_size": "big"})),
        "hidden-huge": (good, cfg(lambda m: {**m, "hidden_size": 10**6, "num_attention_heads": 1})),
        "intermediate-huge": (good, cfg(lambda m: {**m, "intermediate_size": 10**9})),
        "layers-negative": (good, cfg(lambda m: {**m, "num_hidden_layers": -3})),
        "labels-list": (good, cfg(lambda m: {**m, "id2label": ["a", "b"]})),
        "architectures-string": (good, cfg(lambda m: {**m, "architectures": "BertModel"})),
        "safetensors-truncated": (good, write("model.safetensors", st[: len(st) // 2])),
        "safetensors-header-only": (good, write("model.safetensors", st[:64])),
        "safetensors-zero": (good, write("model.safetensors", b"")),
        "safetensors-garbage": (good, write("model.safetensors", b"\xff" * 4096)),
        "safetensors-text": (good, write("model.safetensors", "not weights\n" * 100)),
        "vocab-no-unk": (good, _without_unk),
        "tokenizer-json-garbage": (good, write("tokenizer.json", "{garbage")),
        "tokenizer-config-array": (good, write("tokenizer_config.json", "[]")),
        "modules-string": (emb, write("modules.json", '"abc"')),
        "modules-strings": (emb, write("modules.json", '["a", "b"]')),
        "modules-dict": (emb, write("modules.json", '{"type": "Pooling"}')),
        "modules-deep": (emb, write("modules.json", "[" * 100000 + "]" * 100000)),
        "pooling-array": (emb, write("1_Pooling/config.json", "[true]")),
        "pooling-garbage": (emb, write("1_Pooling/config.json", "{x")),
        "pooling-path-escape": (emb, write("modules.json", json.dumps(
            [{"idx": 1, "name": "1", "path": "../../../../etc", "type": "sentence_transformers.models.Pooling"}]))),
    }
    names = sorted(bad)
    if fast:
        names = [n for n in names if n in ("config-array", "config-deep", "config-empty", "hidden-string",
                                           "safetensors-truncated", "vocab-no-unk", "modules-strings")]
    for name in names:
        src, fn = bad[name]
        p = d / name
        shutil.copytree(src, p)
        fn(p)
        out = c.root / "outs" / f"hf-{name}"
        c.add("hf", f"distill {name}", "distill", "--teacher", f"hf:{p}", "--data", data, "--student",
              "hf:layers=1", "--epochs", "1", "--out", out, limit_s=120, after=_no_half_files(out))
        c.add("hf", f"size {name}", "size", "--teacher", f"hf:{p}", "--data", data, "--profile", "raspberry-pi-4",
              limit_s=120)
    _text_data(c, good, d, fast)


def _text_data(c: Corpus, teacher: Path, d: Path, fast: bool) -> None:
    """Text data a Hugging Face teacher reads, broken: nesting, encodings, files that are not files, lengths
    that leave no room for text, students too big to hold."""
    import hf_models

    rows = hf_models.texts(40)
    good = hf_models.write_csv(d / "ok.csv", rows)
    bad: dict[str, Callable[[Path], object]] = {
        "deep.jsonl": lambda p: p.write_text('{"text": ' + "[" * 100000 + "]" * 100000 + "}\n"),
        "deep-object.jsonl": lambda p: p.write_text('{"text": "a", "label": ' + '{"a": ' * 100000 + "1"
                                                    + "}" * 100001 + "\n"),
        "array-rows.jsonl": lambda p: p.write_text("[1, 2]\n[3]\n"),
        "text-number.jsonl": lambda p: p.write_text('{"text": 5, "label": "sport"}\n' * 10),
        "label-object.jsonl": lambda p: p.write_text('{"text": "a goal", "label": {"x": 1}}\n' * 10),
        "latin1.csv": lambda p: p.write_bytes("text,label\ncaf\xe9 goal,sport\n".encode("latin-1") * 5),
        "latin1.txt": lambda p: p.write_bytes("caf\xe9 goal\n".encode("latin-1") * 5),
        "utf16.txt": lambda p: p.write_text("a goal\n" * 5, encoding="utf-16"),
        "binary.jsonl": lambda p: p.write_bytes(bytes(range(256)) * 8),
        "nul.txt": lambda p: p.write_bytes(b"\x00" * 4096),
        "one-line.txt": lambda p: p.write_text("a goal\n"),
        "long-line.txt": lambda p: p.write_text(("goal " * 200000 + "\n") * 2),
        "empty-text.csv": lambda p: p.write_text("text,label\n,sport\n,food\n"),
        "unknown-label.csv": lambda p: p.write_text("text,label\na goal,sport\nsome rain,astrology\n" * 5),
    }
    names = sorted(bad)
    if fast:
        names = [n for n in names if n in ("deep.jsonl", "latin1.csv", "nul.txt", "unknown-label.csv")]
    cases = [(n, d / n, []) for n in names] + [(n, p, []) for n, p in _specials(d).items()]
    cases += [(f"--max-length {n}", good, ["--max-length", str(n)]) for n in (1, 2, 100001)]
    cases += [(f"--student {s}", good, ["--student", s]) for s in ("hf:layers=1,hidden=100000", "hf:layers=9",
                                                                    "hf:layers=1,hidden=10", "hf:layers=0")]
    for name, p, extra in cases:
        if name in bad:
            bad[name](p)
        out = c.root / "outs" / f"text-{name.replace('/', '_')}"
        argv = ["distill", "--teacher", f"hf:{teacher}", "--data", p, "--student", "hf:layers=1", "--epochs", "1",
                "--out", out, *extra]
        c.add("hf", f"distill text {name}", *argv, limit_s=120, after=_no_half_files(out))


def _not_executed(root: Path):
    def check() -> str | None:
        hits = list(root.rglob(MARKER))
        for h in hits:
            h.unlink()
        return f"executed: untrusted code ran ({hits[0].parent.name})" if hits else None
    return check


def _no_half_files(run: Path):
    def check() -> str | None:
        if not run.is_dir():
            return None
        locks = (".manifest.lock", ".edgekd.lock")
        left = [p.name for p in run.rglob("*") if p.name.startswith(".") and p.name not in locks
                or p.suffix in (".tmp", ".partial")]
        if left:
            return f"lost: temp files left behind: {', '.join(left[:3])}"
        if (run / "manifest.json").exists():
            try:
                json.loads((run / "manifest.json").read_text())
            except ValueError:
                return "lost: manifest.json no longer parses"
        return None
    return check


# ---------------------------------------------------------------------------------------------------------------
# kills and races (subprocesses)


def kills(root: Path, fast: bool) -> list[Outcome]:
    """SIGKILL / SIGINT / SIGTERM each step at several points; the run must stay valid and the step rerun."""
    out = []
    steps = {"distill": ["distill", "--teacher", "teacher.py:build", "--data", "data.npz", "--student",
                         "mlp:hidden=8", "--epochs", "40", "--out", "RUN", "--force"],
             "export": ["export", "RUN"], "quantize": ["quantize", "RUN", "--allow-slower", "--max-drop", "1"],
             "quantize-static": ["quantize", "RUN", "--mode", "static", "--allow-slower", "--max-drop", "1"],
             "bench": ["bench", "RUN", "--runs", "2000"]}
    points = [0.5, 2.0, 4.0] if not fast else [2.0]
    for step, argv in steps.items():
        for sig, when in [(s, w) for s in (signal.SIGKILL, signal.SIGINT, signal.SIGTERM) for w in points]:
            run = root / "kills" / f"{step}-{sig.name}-{when}"
            shutil.copytree(root / "run", run)
            case = Case("kill", f"{step} {sig.name} at {when}s", [])
            t0 = time.perf_counter()
            p = subprocess.Popen([sys.executable, "-m", "edgekd", *[str(run) if a == "RUN" else a for a in argv]],
                                 cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(when)
            p.send_signal(sig)
            try:
                _, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out.append(Outcome(case, "hang", None, "did not stop after the signal", time.perf_counter() - t0))
                continue
            problem = _valid_after(run, root, argv) or _no_half_files(run)()  # the next run cleans up
            want = {signal.SIGKILL: -9, signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
            if problem:
                verdict = "lost"
            elif "Traceback" in err:
                verdict = "traceback"
            elif p.returncode not in (want, 0):  # 0: the step finished before the signal came
                verdict, problem = "crash", f"exit {p.returncode}, expected {want}: {err.strip()[:160] or 'no output'}"
            else:
                verdict = "clean"
            out.append(Outcome(case, verdict, p.returncode, (problem or err.strip()[-200:]), time.perf_counter() - t0))
    return out


def _valid_after(run: Path, root: Path, argv: list[str]) -> str | None:
    """After a kill: the step reruns to completion on the same run directory."""
    cmd = [sys.executable, "-m", "edgekd", *[str(run) if a == "RUN" else a for a in argv]]
    if "--runs" in cmd:
        cmd[cmd.index("--runs") + 1] = "3"
    if "--epochs" in cmd:
        cmd[cmd.index("--epochs") + 1] = "1"
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    return None if res.returncode == 0 else f"lost: rerun failed: {res.stderr.strip()[-200:]}"


def races(root: Path, fast: bool) -> list[Outcome]:
    """Concurrent writers: 8 processes recording 50 manifest sections each; two benches of one run at once."""
    out = []
    run = root / "race"
    shutil.copytree(root / "run", run)
    code = ("import sys; from edgekd.api.rundir import RunDir; r = RunDir.open(sys.argv[1]); "
            "[r.record(f'x{sys.argv[2]}_{i}', {'i': i}) for i in range(50)]")
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(run), str(k)]) for k in range(8)]
    for p in procs:
        p.wait(120)
    steps = json.loads((run / "manifest.json").read_text())["steps"]
    lost = 400 - sum(1 for k in steps if k.startswith("x"))
    out.append(Outcome(Case("race", "8 writers x 50 records", []), "lost" if lost else "clean", 0,
                       f"{lost} of 400 records lost", time.perf_counter() - t0))
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "edgekd", "bench", str(run), "--runs", "20", "--no-memory"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    bad = _no_half_files(run)()
    try:
        json.loads((run / "bench.json").read_text())
    except ValueError:
        bad = bad or "lost: bench.json half-written"
    out.append(Outcome(Case("race", "two benches of one run", []), "lost" if bad else
                       "traceback" if any("Traceback" in e for e in errs) else "clean", 0, bad or "",
                       time.perf_counter() - t0))
    return out


# ---------------------------------------------------------------------------------------------------------------


FAMILIES = {"onnx": onnx_files, "data": data_files, "profile": profiles, "option": options, "run": tampered_runs,
            "hf": hf_folders, "compare": forged_benches}


def main(fast: bool = False, only: str | None = None, verbose: bool = False) -> dict:
    os.environ.setdefault("COLUMNS", "80")
    with tempfile.TemporaryDirectory() as td:
        root = Path(td)
        (root / "outs").mkdir()
        ws = workspace(root)
        corpus = Corpus(root)
        for name, fn in FAMILIES.items():
            if only in (None, name):
                fn(corpus, ws, fast)
        outcomes = []
        t0 = time.perf_counter()
        for i, case in enumerate(corpus.cases):
            outcomes.append(run_in_process(case, root))
            if verbose:
                o = outcomes[-1]
                print(f"[{i + 1}/{len(corpus.cases)}] {o.verdict:9} {case.family}: {case.name}: {o.line[:150]}",
                      file=sys.stderr, flush=True)
        if not fast and only in (None, "kill"):
            outcomes += kills(root, fast)
        if not fast and only in (None, "race"):
            outcomes += races(root, fast)
        seconds = time.perf_counter() - t0
    counts = Counter(o.verdict for o in outcomes)
    by_family: dict = {}
    for o in outcomes:
        by_family.setdefault(o.case.family, Counter())[o.verdict] += 1
    bad = [o for o in outcomes if o.verdict not in ("clean", "ok")]
    from edgekd.deploy.measure import host_info

    report = {"host": host_info(),
              "cases": len(outcomes), "counts": dict(counts), "by_family": {k: dict(v) for k, v in by_family.items()},
              "seconds": seconds, "problems": [{"family": o.case.family, "case": o.case.name, "verdict": o.verdict,
                                                "exit": o.code, "line": o.line} for o in bad],
              "accepted": [o.case.name for o in outcomes if o.verdict == "ok"]}
    return report


if __name__ == "__main__":
    from common import write_result

    fast = "--fast" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    r = main(fast, only, verbose="-v" in sys.argv)
    print(f"{r['cases']} cases in {r['seconds']:.0f} s: {r['counts']}")
    for fam, cnt in r["by_family"].items():
        print(f"  {fam}: {cnt}")
    for p in r["problems"]:
        print(f"  [{p['verdict']}] {p['family']}: {p['case']} (exit {p['exit']}): {p['line']}")
    print(f"wrote {write_result('robustness' + ('_fast' if fast else '') + (f'_{only}' if only else ''), r)}")

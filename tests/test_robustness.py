"""Reliability and security (issue 19): the fast subset of benchmarks/robustness.py's corpus (bad ONNX files, bad
data of every format, bad profiles, bad option values, tampered run directories) gives zero tracebacks, hangs,
half files and untrusted code run; a run directory's code runs only with the user's say-so; one writer per run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import invoke, invoke_json
from test_bad_inputs import assert_usage_error

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_the_fast_corpus_has_no_traceback_hang_half_file_or_untrusted_code(monkeypatch, tmp_path):
    import robustness

    monkeypatch.setenv("EDGEKD_CONFIG_DIR", str(tmp_path / "config"))
    r = robustness.main(fast=True)
    assert r["cases"] >= 200
    assert r["problems"] == [], r["problems"]
    assert r["counts"].get("clean", 0) >= 0.75 * r["cases"]


@pytest.fixture()
def evil_run(project, runner, tmp_path, monkeypatch):
    """A run distilled here, then handed over as someone else's: its manifest now names a teacher file that
    leaves a marker when imported."""
    monkeypatch.setenv("EDGEKD_CONFIG_DIR", str(tmp_path / "me"))
    run = tmp_path / "run"
    invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "1", "--out", run)
    evil = tmp_path / "evil.py"
    evil.write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(tmp_path / 'MARKER')!r}).write_text("ran")
        import sys; sys.path.insert(0, {str(project)!r})
        from teacher import build
    """))
    from edgekd.files import sha256

    m = json.loads((run / "manifest.json").read_text())  # a consistent manifest, signed by someone else
    m["steps"]["distill"]["teacher"].update(spec=f"{evil}:build", code={"files": {str(evil.resolve()): sha256(evil)},
                                                                        "signature": "0" * 64})
    (run / "manifest.json").write_text(json.dumps(m))
    return run, tmp_path / "MARKER"


def test_a_run_directory_does_not_run_the_code_it_names(evil_run, runner):
    run, marker = evil_run
    e = invoke_json(runner, "export", run)  # the student exports; the teacher is refused, with why
    assert "did not record (evil.py)" in e["models"]["teacher"]["error"] and "--trust-run" in e["models"]["teacher"][
        "error"]
    assert not marker.exists()
    b = invoke_json(runner, "bench", run, "--runs", "3", "--no-memory")
    assert "teacher_pytorch" not in b["models"] and any("--trust-run" in n for n in b["notes"])
    assert not marker.exists()
    e = invoke_json(runner, "export", run, "--trust-run")  # the user's say-so
    assert marker.exists() and "error" not in e["models"]["teacher"]


def test_code_changed_since_distill_is_refused_even_when_trusted(project, runner, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKD_CONFIG_DIR", str(tmp_path / "me"))
    (tmp_path / "p").mkdir()
    for f in ("teacher.py", "teacher_weights.pt", "data.npz"):
        (tmp_path / "p" / f).write_bytes((project / f).read_bytes())
    run = tmp_path / "run"
    invoke_json(runner, "distill", "--teacher", f"{tmp_path}/p/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "1", "--out", run)
    assert "error" not in invoke_json(runner, "export", run)["models"]["teacher"]  # your own run: trusted
    with open(tmp_path / "p" / "teacher.py", "a") as f:
        f.write("\n# changed\n")
    for extra in ((), ("--trust-run",)):
        e = invoke_json(runner, "export", run, *extra)
        assert "changed since distill recorded it (teacher.py)" in e["models"]["teacher"]["error"]
    # another user (another key) gets the refusal, not the code
    monkeypatch.setenv("EDGEKD_CONFIG_DIR", str(tmp_path / "someone-else"))
    with open(tmp_path / "p" / "teacher.py", "w") as f:
        f.write((project / "teacher.py").read_text())
    assert "--trust-run" in invoke_json(runner, "export", run)["models"]["teacher"]["error"]


def test_one_writer_per_run_directory(project, runner, tmp_path):
    """A step holding the run's lock makes a second one-line refusal naming it; a killed holder's lock is free."""
    run = tmp_path / "run"
    invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "1", "--out", run)
    hold = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from edgekd.files import step_lock
        with step_lock({str(run)!r}, "distill"):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "held"
        assert_usage_error(*invoke(runner, "export", run), "is in use by `edgekd distill` (pid", "wait for it")
    finally:
        hold.kill()
        hold.wait()
    assert invoke_json(runner, "export", run)["models"]["student"]  # the OS dropped the killed holder's lock


def test_temp_files_of_a_killed_writer_are_cleaned(tmp_path):
    from edgekd.files import write_text

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".report.md.{dead}.abc123.tmp"
    stale.write_text("half")
    mine = tmp_path / f".report.md.{os.getpid()}.zzz.tmp"  # a live writer's: left alone
    mine.write_text("in progress")
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "report.md", "done")
    finally:
        os.umask(old)
    assert not stale.exists() and mine.exists()
    assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644  # like any file under this umask


def test_a_pickled_whole_model_needs_trust_pickle(project, runner, tmp_path):
    import torch

    ns: dict = {}
    exec((project / "teacher.py").read_text(), ns)
    torch.save(ns["make"](), tmp_path / "whole.pt")  # torch.save(model): unpickling runs code
    args = ["distill", "--teacher", tmp_path / "whole.pt", "--data", f"{project}/data.npz", "--student",
            "mlp:hidden=8", "--epochs", "1", "--out", tmp_path / "r"]
    assert_usage_error(*invoke(runner, *args), "is not a TorchScript file", "--trust-pickle")
    d = invoke_json(runner, *args, "--trust-pickle")
    assert d["student_params"] > 0


def test_the_teacher_cache_keeps_to_its_memory_budget(project, runner, tmp_path):
    args = ["distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz", "--student",
            "mlp:hidden=8", "--epochs", "1"]
    assert_usage_error(*invoke(runner, *args, "--cache", "memory", "--max-memory-mb", "0.001", "--out",
                               tmp_path / "a"), "--cache memory would hold", "--max-memory-mb")
    d = invoke_json(runner, *args, "--max-memory-mb", "0.001", "--out", tmp_path / "b")  # auto: to disk
    assert d["cache"] == "disk"


@pytest.mark.slow
def test_a_large_npy_is_read_not_loaded(tmp_path):
    """bench of a plain .onnx with a 256 MB .npy: memory-mapped, its test fifth read in batches, so the peak RSS
    grows by far less than the file."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [w])
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(262144, 256))
    for i in range(0, len(big), 16384):
        big[i:i + 16384] = 0.5
    big.flush()
    del big
    code = ("import resource, sys; from edgekd.cli import cli\n"
            "try:\n    cli.main(sys.argv[1:], prog_name='edgekd')\nexcept SystemExit:\n    pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)")
    base = subprocess.run([sys.executable, "-c", code, "bench", "m.onnx", "--runs", "3", "--no-memory"],
                          capture_output=True, text=True, cwd=tmp_path)
    res = subprocess.run([sys.executable, "-c", code, "bench", "m.onnx", "--data", "big.npy", "--runs", "3",
                          "--no-memory"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0 and "Error" not in res.stderr, res.stderr
    grew = int(res.stdout.strip().splitlines()[-1]) - int(base.stdout.strip().splitlines()[-1])
    assert grew < 128, f"peak RSS grew by {grew} MB for a 256 MB file"  # its test fifth: 51 MB


def test_names_from_files_are_escaped_in_reports():
    from edgekd.api.report import _md_cell

    assert _md_cell("evil|<b>\nname") == "evil\\|<b> name"  # a pipe cannot split a Markdown table row


@pytest.mark.parametrize("edit", [
    {"spec": "os:abort"},                                   # a stdlib callable: no file to hash
    {"arch": "os:abort"},
    {"spec": "pytest:main"},                                # site-packages, with a conftest.py in the run
    {"kind": "pickle", "trust_pickle": True},               # a record that asks to unpickle
    {"spec": "RUN/evil.PT", "trust_pickle": True, "kind": "pickle"},  # a suffix the old check did not know
    {"output": "something_else"},
])
def test_a_forged_teacher_record_runs_nothing(project, tmp_path, edit):
    """A run distill wrote (its signature valid), then its manifest's teacher record edited: export and bench
    refuse the teacher (no code runs, no abort), in a fresh process as a user would run them."""
    import subprocess
    import sys

    from click.testing import CliRunner

    run = tmp_path / "run"
    invoke_json(CliRunner(), "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "1", "--out", run)
    marker = tmp_path / "MARKER"
    (run / "conftest.py").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n")
    (run / "evil.PT").write_bytes(b"not a real pickle")
    m = json.loads((run / "manifest.json").read_text())
    m["steps"]["distill"]["teacher"].update({k: (v.replace("RUN", str(run)) if isinstance(v, str) else v)
                                             for k, v in edit.items()})
    (run / "manifest.json").write_text(json.dumps(m))
    for step in (["export", str(run), "--json"], ["bench", str(run), "--runs", "3", "--no-memory", "--json"]):
        res = subprocess.run([sys.executable, "-m", "edgekd", *step], capture_output=True, text=True, cwd=run,
                             timeout=300)
        assert res.returncode in (0, 2) and res.returncode != -6, (res.returncode, res.stderr)  # -6: SIGABRT
        assert not marker.exists()
        if res.returncode == 0:
            out = json.loads(res.stdout)
            told = out["models"]["teacher"]["error"] if step[0] == "export" else " ".join(out["notes"])
            assert "--trust-run" in told or "changed since distill recorded it" in told, told


def test_quantize_never_overwrites_a_run_artifact_or_a_device(project, runner, tmp_path):
    run = tmp_path / "run"
    invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "1", "--out", run)
    invoke_json(runner, "export", run)
    for name in ("manifest.json", "eval.npz", "teacher.onnx", "metrics.jsonl", "student.pt"):
        before = (run / name).read_bytes()
        assert_usage_error(*invoke(runner, "quantize", run, "--output", run / name), "the run's own", name)
        assert (run / name).read_bytes() == before
    assert_usage_error(*invoke(runner, "quantize", run, "--output", "/dev/null"), "not a regular file")


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(project, runner, tmp_path):
    run = tmp_path / "run"
    invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "1", "--out", run)
    victim = tmp_path / "victim.txt"
    victim.write_text("x" * 32)
    (run / ".edgekd.lock").unlink(missing_ok=True)
    (run / ".edgekd.lock").symlink_to(victim)
    assert_usage_error(*invoke(runner, "export", run), "symbolic link")
    assert victim.read_text() == "x" * 32


@pytest.mark.slow
@pytest.mark.parametrize("step, sig, want", [
    (["bench", "RUN", "--runs", "1000000", "--seconds", "60", "--no-memory"], signal.SIGINT, 130),
    (["quantize", "RUN", "--mode", "static", "--allow-slower", "--max-drop", "1"], signal.SIGTERM, 143),
    (["bench", "RUN", "--runs", "1000000", "--seconds", "60", "--no-memory"], signal.SIGTERM, 143),
])
def test_an_interrupted_step_exits_130_or_143_and_the_run_stays_usable(project, runner, tmp_path, step, sig, want):
    """Ctrl-C part-way through bench ended in a segfault and quantize in SIGABRT (onnxruntime's threads meeting
    the interpreter's teardown): an interrupted step exits 128 + the signal, with one line and no traceback, and
    the step then reruns on the same run directory."""
    run = tmp_path / "run"
    invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "1", "--out", run)
    invoke_json(runner, "export", run)
    argv = [str(run) if a == "RUN" else a for a in step]
    p = subprocess.Popen([sys.executable, "-m", "edgekd", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    seen = ""
    while "[" + step[0] + "]" not in seen:  # the step is under way (past the imports), sessions running
        line = p.stderr.readline()
        assert line, f"{step[0]} ended before it could be interrupted"
        seen += line
    time.sleep(1.0)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == want, (p.returncode, err)
    assert "Traceback" not in err and "Interrupted" in err, err
    again = invoke(runner, *[a if a not in ("1000000", "60") else "3" for a in argv])
    assert again[0] == 0, again[2]

"""The first hour, as a newcomer runs the README: the demo twice, the four-step chain to the end, verdicts that
agree with the summary, and one-line refusals for what a newcomer mistypes."""
import json
import os

import numpy as np
import pytest
import real_models
from conftest import error_lines, invoke, invoke_json
from test_bad_inputs import assert_usage_error


@pytest.fixture(scope="module")
def chain_run(project, tmp_path_factory):
    """A run distilled for the Pi 4, where a tiny MLP's int8 is predicted slower than fp32."""
    from click.testing import CliRunner

    run = tmp_path_factory.mktemp("chain") / "run"
    invoke_json(CliRunner(), "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "2", "--profile", "raspberry-pi-4", "--out", run)
    return run


def test_the_four_step_chain_reaches_bench_with_fp32_recorded(chain_run, runner):
    """`edgekd export runs/x && edgekd quantize runs/x && edgekd bench runs/x`: quantize's "ship fp32" is an
    answer (exit 0), bench then uses the run's profile, says why there is no int8 model, and its summary
    describes the model its verdict ships."""
    for args in (["export", chain_run], ["quantize", chain_run, "--mode", "static"]):
        code, out, err = invoke(runner, *args)
        assert code == 0, (args, out, err)
    q = json.loads((chain_run / "manifest.json").read_text())["steps"]["quantize"]
    assert q["written"] is False and "ship the fp32 model" in q["verdict"]
    b = invoke_json(runner, "bench", chain_run, "--runs", "20", "--no-memory")
    assert b["prediction"]["profile"] == "raspberry-pi-4"  # the run's profile, without --profile
    assert b["settings"]["threads"] == min(4, os.cpu_count() or 1)  # the Pi's 4 cores, capped at this machine's
    assert b["verdict"][0].startswith("no int8 model: int8 is slower than fp32 on raspberry-pi-4")
    assert b["summary"]["shipped"] == "student_fp32"
    s, t = b["models"]["student_fp32"], b["models"]["teacher_onnx"]
    assert b["summary"]["size_ratio_vs_teacher"] == pytest.approx(s["size_bytes"] / t["size_bytes"])
    assert b["summary"]["retention"] == s["retention"]
    assert (chain_run / "bench.json").is_file() and (chain_run / "report.md").is_file()
    assert "Summary (the shipped model): shipped student_fp32" in (chain_run / "report.md").read_text()


def test_summary_describes_the_int8_model_only_when_the_verdict_ships_it(chain_run, runner, tmp_path):
    """With an int8 model written anyway, the summary and the verdict still name the same model."""
    invoke_json(runner, "quantize", chain_run, "--allow-slower", "--max-drop", "1", "--profile", "raspberry-pi-4")
    b = invoke_json(runner, "bench", chain_run, "--runs", "30", "--no-memory", "--output", tmp_path / "b.json")
    ship = b["summary"]["shipped"]
    int8_line = next(v for v in b["verdict"] if "fp32 (student.onnx)" in v or "than fp32 on this host" in v)
    assert ("ship student.int8.onnx" in int8_line) == (ship == "student_int8"), (ship, int8_line)
    m = b["models"][ship]
    assert b["summary"]["retention"] == m["retention"]
    assert json.loads((tmp_path / "b.json").read_text())["summary"]["shipped"] == ship
    assert (tmp_path / "report.md").is_file()  # the report goes beside --output


def test_bench_of_a_plain_model_writes_a_bench_json_that_compare_reads(runner, tmp_path):
    path, data = real_models.segmenter(tmp_path)
    args = ["bench", path, "--data", data, "--shape", "pixels=1x3x48x48", "--runs", "20", "--no-memory", "--json"]
    code, out, err = invoke(runner, *args)
    assert code == 0, err
    written = path.with_name(path.stem + ".bench.json")
    assert written.is_file() and json.loads(written.read_text())["models"]["model"]
    assert not (tmp_path / "report.md").exists()  # nothing beside the user's own files but the bench.json
    r = invoke_json(runner, "compare", written, written)
    assert r["rows"] and all(row["verdict"] == "within noise" for row in r["rows"])


def test_an_ep_this_onnxruntime_lacks_is_a_usage_error(runner, tmp_path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    path, data = real_models.segmenter(tmp_path)
    code, out, err = invoke(runner, "bench", path, "--data", data, "--ep", "cuda", "--runs", "3", "--no-memory")
    assert_usage_error(code, out, err, "--ep cuda", "none of them", "onnxruntime-gpu")


def test_newcomer_typos_are_refused_before_any_work(runner, project, tmp_path):
    code, out, err = invoke(runner, "profiles", "calibrate", "-o", tmp_path / "no" / "such" / "x.toml", "--quick")
    assert_usage_error(code, out, err, "does not exist")
    assert not (tmp_path / "no").exists()
    path, data = real_models.segmenter(tmp_path)
    code, out, err = invoke(runner, "quantize", path, "--data", data, "--max-drop", "5")
    assert_usage_error(code, out, err, "--max-drop must be in [0, 1], got 5")
    code, out, err = invoke(runner, "quantize", path, "--data", data, "--allow-slower", "--require-faster")
    assert_usage_error(code, out, err, "contradict")


def test_steps_say_what_they_are_doing_as_they_go(chain_run, runner):
    """Off a terminal (here), quantize says each phase when it starts, before its result."""
    code, out, err = invoke(runner, "quantize", chain_run, "--allow-slower", "--max-drop", "1")
    assert code == 0, err
    said = [ln for ln in err.splitlines() if ln.startswith("[quantize] ")]
    assert any("trying" in ln for ln in said) and any("timing fp32" in ln for ln in said), err
    assert not error_lines(err) or all(ln.startswith("Note: ") for ln in error_lines(err)), err


def test_help_is_readable_at_80_columns(runner):
    """`edgekd --help` shows each command's summary whole; `distill --help` groups its options; no line is
    wider than 80."""
    code, out, _ = invoke(runner, "--help")
    commands = out.split("Commands:")[1].splitlines()
    assert code == 0 and not any(ln.endswith("...") for ln in commands), out
    assert all(len(ln) <= 80 for ln in out.splitlines()), out
    code, out, _ = invoke(runner, "distill", "--help")
    assert code == 0 and all(len(ln) <= 80 for ln in out.splitlines()), [ln for ln in out.splitlines()
                                                                         if len(ln) > 80]
    for group in ("Teacher and data:", "Student and sizing:", "Training:", "Hugging Face:"):
        assert group in out, group
    for cmd in ("export", "quantize", "bench", "size", "pipeline", "demo", "compare", "predict"):
        code, out, _ = invoke(runner, cmd, "--help")
        assert code == 0 and all(len(ln) <= 80 for ln in out.splitlines()), (cmd, out)


@pytest.mark.slow
def test_the_demo_runs_twice_reusing_its_teacher(runner, tmp_path):
    out = tmp_path / "demo"
    first = invoke_json(runner, "demo", "--out", out, "--epochs", "2")
    assert first["teacher"]["reused"] is False and first["bench"]["verdict"]
    second = invoke_json(runner, "demo", "--out", out, "--epochs", "2")
    assert second["teacher"]["reused"] is True and second["bench"]["verdict"]
    other = tmp_path / "other"
    invoke_json(runner, "pipeline", "--teacher", out / "teacher" / "teacher.pt", "--arch",
                "edgekd.models.zoo:DigitsCNN", "--data", "digits", "--student", "mlp:hidden=8", "--epochs", "1",
                "--runs", "3", "--no-memory", "--allow-slower", "--out", other)
    code, o, e = invoke(runner, "demo", "--out", other, "--epochs", "1")
    assert_usage_error(code, o, e, "the demo did not make", "--force")


def test_profiles_show_says_each_source_once(runner, monkeypatch):
    """A source many fields share (the cost priors' note) is one numbered reference, not repeated per row."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = invoke(runner, "profiles", "show", "raspberry-pi-4")
    assert code == 0 and len(out.splitlines()) < 80, len(out.splitlines())
    assert out.count("unverified until `edgekd profiles") == 1
    assert all(len(ln) <= 80 for ln in out.splitlines())


def test_every_option_has_help():
    import click

    from edgekd.cli import cli

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for n, c in cmd.commands.items():
                yield from walk(c, [*path, n])
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.help:
                yield f"{' '.join(path)} {p.opts[0]}"
    assert list(walk(cli, ["edgekd"])) == []


def test_int8_slower_on_long_texts_is_said_beside_the_verdict():
    """A text model's int8 wins on the data's short texts but loses at 128 tokens: the verdict says where."""
    from edgekd.api.bench import fixed_length_verdict

    rng = np.random.default_rng(0)
    models = {"student_fp32": {"path": "r/student.onnx", "latency_ms": {"p50": 1.0, "samples_ms": list(
                  rng.normal(1.0, 0.01, 50))}, "latency_seq128_ms": {"b1": 2.0, "b8": 10.0}},
              "student_int8": {"path": "r/student.int8.onnx", "latency_ms": {"p50": 0.5, "samples_ms": list(
                  rng.normal(0.5, 0.01, 50))}, "latency_seq128_ms": {"b1": 2.5, "b8": 9.0}}}
    lines = fixed_length_verdict(models)
    assert len(lines) == 1 and lines[0].startswith("at 128 tokens, batch 1: int8 is 1.25x slower than fp32")
    assert lines[0].endswith("ship student.onnx")


def test_a_device_name_is_one_path_component():
    from edgekd.api.bench import device_folder

    assert device_folder("../../x", "ssh://pi@h") == "x"
    assert device_folder("/etc", "ssh://pi@h") == "etc"
    assert device_folder(None, "ssh://pi@10.0.0.5:2222?python=/home/pi/v/bin/python") == "pi_10.0.0.5_2222"
    assert device_folder("..", "ssh://..") == "device"

"""`--on ssh://...`: bench and profiles calibrate on a device over SSH, for real. A throwaway OpenSSH server on
127.0.0.1 (Debian's openssh-server; .ci/run installs it) with a throwaway key plays the device, and the torch-free
OpenVINO environment `make test` builds is the device's python (onnxruntime, onnx and numpy; no torch, no
scikit-learn). The tests skip, saying why, only where sshd cannot start."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import error_lines, invoke, invoke_json
from sshd import NoSshd, free_port, throwaway_sshd
from test_bad_inputs import assert_usage_error
from test_providers import OV_PYTHON

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """ssh://USER@127.0.0.1:PORT?python=<the torch-free venv's python>, with EDGEKD_SSH_OPTIONS set to a client
    config holding the throwaway key."""
    if not Path(OV_PYTHON).is_file():
        pytest.skip(f"no torch-free device environment at {OV_PYTHON} (make test builds it)")
    d = tmp_path_factory.mktemp("sshd")
    old = os.environ.get("EDGEKD_SSH_OPTIONS")
    try:
        with throwaway_sshd(d) as (base, config):
            os.environ["EDGEKD_SSH_OPTIONS"] = f"-F {config}"
            yield {"url": f"{base}?python={OV_PYTHON}", "dir": d}
    except NoSshd as e:
        pytest.skip(str(e))
    finally:
        if old is None:
            os.environ.pop("EDGEKD_SSH_OPTIONS", None)
        else:
            os.environ["EDGEKD_SSH_OPTIONS"] = old


@pytest.fixture(scope="module")
def run(project, tmp_path_factory):
    """A distilled, exported, quantized run benchmarked on this workstation."""
    from click.testing import CliRunner

    r = CliRunner()
    out = tmp_path_factory.mktemp("remote") / "run"
    invoke_json(r, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "1", "--out", out)
    invoke_json(r, "export", out)
    invoke_json(r, "quantize", out, "--allow-slower", "--max-drop", "1")
    invoke_json(r, "bench", out, "--runs", "20", "--no-memory", "--threads", "1")
    return out


def _leftovers() -> set[str]:
    return {p.name for p in Path("/tmp").glob("edgekd.*")}


def test_bench_on_the_device(device, run, runner):
    before = _leftovers()
    r = invoke_json(runner, "bench", run, "--on", device["url"], "--runs", "20", "--threads", "1",
                    "--profile", "raspberry-pi-4")
    # measured there, without torch: the ONNX teacher is the reference
    assert set(r["models"]) == {"teacher_onnx", "student_fp32", "student_int8"}
    assert any("teacher_pytorch left out" in n for n in r["notes"])
    assert r["device"]["url"].startswith("ssh://") and r["device"]["onnxruntime"] and r["device"]["cpu_count"]
    assert r["host"]["onnxruntime"] == r["device"]["onnxruntime"]  # the device's onnxruntime measured it
    assert {"check_s", "copy_s", "run_s", "cleanup_s"} <= set(r["overhead"])
    assert r["models"]["student_fp32"]["retention"] is not None and r["models"]["student_fp32"]["memory"]["peak_rss_mb"]
    # the profile's prediction is judged against the device itself
    assert "prediction_error" in r["models"]["student_fp32"] and r["prediction"]["measured_on"] == r["device"]["url"]
    folder = run / "devices" / r["device"]["node"]
    saved = json.loads((folder / "bench.json").read_text())
    assert saved["records"] and set(saved["workstation"]["p50_ms"]) >= {"student_fp32", "teacher_onnx"}
    text = (folder / "report.md").read_text()
    assert "against this workstation" in text and "Measured on the device ssh://" in text
    assert _leftovers() == before  # nothing left behind


def test_keep_leaves_the_copy_and_a_plain_onnx_with_its_teacher(device, run, runner):
    import numpy as np

    np.savez(run.parent / "x.npz", x=np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32))
    r = invoke_json(runner, "bench", run / "student.onnx", "--teacher", run / "teacher.onnx", "--data",
                    run.parent / "x.npz", "--on", device["url"], "--keep", "--runs", "5", "--no-memory")
    kept = Path(r["kept"])
    try:
        assert (kept / "job.json").is_file() and (kept / "model" / "student.onnx").is_file()
        assert list(kept.glob("edgekd-*.whl"))
        assert r["models"]["model"]["agreement"] is not None and "speedup_vs_teacher_p50" in r["summary"]
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def test_calibrate_on_the_device(device, runner, tmp_path):
    from edgekd.profiles import load

    out = tmp_path / "device.toml"
    r = invoke_json(runner, "profiles", "calibrate", "--quick", "--threads", "1", "-o", out, "--on", device["url"])
    prof = load(str(out))
    assert prof.calibrated and prof.calibration["host"] == r["device"]["node"]
    assert r["path"] == str(out) and r["overhead"]["run_s"] > 0


def test_device_failures_are_one_line_naming_the_device(device, run, runner):
    base = device["url"].split("?")[0]

    def fails(url, *needles, extra=(), env=None, exit_code=1):
        if env:
            os.environ["EDGEKD_SSH_OPTIONS"] = env
        try:
            code, out, err = invoke(runner, "bench", run, "--on", url, "--runs", "3", "--no-memory", *extra)
        finally:
            os.environ["EDGEKD_SSH_OPTIONS"] = f"-F {device['dir'] / 'ssh_config'}"
        lines = error_lines(err)
        assert code == exit_code and len(lines) == 1 and "Traceback" not in err, err
        for n in needles:
            assert n in lines[0], (n, lines[0])

    closed = free_port()
    fails(f"ssh://127.0.0.1:{closed}?python={OV_PYTHON}", f"127.0.0.1:{closed}", "cannot connect")
    other = device["dir"] / "other_config"
    other.write_text((device["dir"] / "ssh_config").read_text().replace("user_key", "other_key"))
    fails(device["url"], "refused the key", "ssh-copy-id", env=f"-F {other}")
    fails(f"{base}?python=/nonexistent/python3", "127.0.0.1", "/nonexistent/python3", "pass ?python=PATH")
    system = shutil.which("python3", path="/usr/bin")
    if system and subprocess.run([system, "-c", "import onnxruntime"], capture_output=True).returncode:
        fails(f"{base}?python={system}", "has no onnxruntime", "-m pip install onnxruntime")
    # a remote command that fails comes back as its one line, prefixed with the device's name
    fails(device["url"], f"Error: {base.removeprefix('ssh://')}: ", "nosuch.npz", extra=("--data", "nosuch.npz"),
          exit_code=2)
    assert_usage_error(*invoke(runner, "bench", run, "--on", "http://example.com"), "ssh://")
    assert_usage_error(*invoke(runner, "bench", run, "--on", f"{device['url']}&silence=soon"), "silence='soon'")
    # a job that hangs on the device (here: a python that answers the checks, then sleeps in the job) is
    # stopped after ?silence= seconds without its heartbeat, not after the hour-long run timeout
    hang = device["dir"] / "hang.sh"
    hang.write_text(f'#!/bin/sh\nif [ "$1" = "-m" ]; then exec sleep 600; fi\n'  # the checks name it as python
                    f'{OV_PYTHON} "$@" | sed \'s#"executable": "[^"]*"#"executable": "{hang}"#\'\n')
    hang.chmod(0o755)
    t0 = time.perf_counter()
    fails(f"{base}?python={hang}&silence=3", "said nothing for 3 s", "?silence=SECONDS")
    assert time.perf_counter() - t0 < 60


def test_device_setup_then_bench_uses_the_venv_and_keeps_the_models(run, runner, tmp_path):
    """`edgekd device setup` makes a venv on the device (from its own package index) with edgekd's runtime;
    `bench --on` without ?python= then runs there, and a second bench of the same run sends no model again."""
    d, home = tmp_path / "sshd", tmp_path / "device-home"
    d.mkdir()
    try:
        with throwaway_sshd(d, env={"EDGEKD_HOME": str(home)}) as (base, config):
            old = os.environ.get("EDGEKD_SSH_OPTIONS")
            os.environ["EDGEKD_SSH_OPTIONS"] = f"-F {config}"
            try:
                r = invoke_json(runner, "device", "setup", f"{base}?python={OV_PYTHON}")
                assert r["mode"] == "online" and r["python"].startswith(str(home / "venv"))
                assert r["onnxruntime"] and (home / "venv" / "bin" / "python").is_file()
                # a device without internet: the wheels for its platform and Python are fetched here, copied over
                off = invoke_json(runner, "device", "setup", f"{base}?python={OV_PYTHON}", "--offline")
                assert off["mode"] == "offline" and off["onnxruntime"] == r["onnxruntime"]
                assert any(p.name.startswith("onnxruntime-") for p in (home / "wheels").iterdir())
                first = invoke_json(runner, "bench", run, "--on", base, "--runs", "3", "--no-memory")
                assert first["device"]["executable"].startswith(str(home / "venv"))
                assert first["overhead"]["reused_files"] == 0 and len(list((home / "cache").iterdir())) >= 3
                second = invoke_json(runner, "bench", run, "--on", base, "--runs", "3", "--no-memory")
                assert second["overhead"]["reused_files"] >= 4  # the models, the eval data and edgekd's wheel
                assert second["overhead"]["copied_mb"] < 0.05 < first["overhead"]["copied_mb"]  # the job alone
                assert set(second["models"]) == set(first["models"])
            finally:
                os.environ["EDGEKD_SSH_OPTIONS"] = old or ""
    except NoSshd as e:
        pytest.skip(str(e))


def test_bench_on_two_devices_at_once_side_by_side(device, run, runner, tmp_path):
    """`--on a,b`: both devices measured at the same time, each in RUN/devices/<its URL>/, and the run's
    report.md puts them side by side with this workstation."""
    d2 = tmp_path / "sshd2"
    d2.mkdir()
    try:
        with throwaway_sshd(d2) as (base2, config2):
            old = os.environ["EDGEKD_SSH_OPTIONS"]
            # one client config for both servers: each server's keys are its own, so both keys are offered
            both = tmp_path / "both_config"
            both.write_text(f"Host *\n  IdentityFile {device['dir'] / 'user_key'}\n  IdentityFile {d2 / 'user_key'}\n"
                            f"  IdentitiesOnly yes\n  UserKnownHostsFile {tmp_path / 'known_hosts'}\n")
            os.environ["EDGEKD_SSH_OPTIONS"] = f"-F {both}"
            try:
                second = f"{base2}?python={OV_PYTHON}"
                r = invoke_json(runner, "bench", run, "--on", f"{device['url']},{second}", "--runs", "3",
                                "--no-memory")
            finally:
                os.environ["EDGEKD_SSH_OPTIONS"] = old
    except NoSshd as e:
        pytest.skip(str(e))
    assert len(r["devices"]) == 2 and len(r["verdict"]) == 2
    port2 = base2.rsplit(":", 1)[1]
    folders = {p.name for p in (run / "devices").iterdir() if (p / "bench.json").is_file()}
    assert any(f.endswith(f"_127.0.0.1_{port2}") for f in folders), folders  # by URL: user_host_port
    text = (run / "report.md").read_text()
    assert "On every device, p50 ms" in text and "| here |" in text.split("On every device")[1].splitlines()[2]

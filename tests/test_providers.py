"""Execution providers: `edgekd providers`, `bench --ep` (unknown EPs refused, missing ones skipped with what
brings them) and, for real, the OpenVINO EP in the torch-free environment `make test` builds
(.venv-openvino: onnxruntime-openvino, onnx, click, rich, numpy — no torch, no scikit-learn)."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import real_models
from conftest import invoke, invoke_json
from test_bad_inputs import assert_usage_error

ROOT = Path(__file__).resolve().parents[1]
OV_PYTHON = str((ROOT / os.environ.get("EDGEKD_OPENVINO_PYTHON", ".venv-openvino/bin/python")).absolute())


def _text_model(root: Path) -> tuple[Path, Path]:
    """The tests' int64 token-id classifier, with its data split into train and test arrays (a device run
    needs no scikit-learn to split it)."""
    path, data = real_models.text(root)
    with np.load(data) as f:
        a = {k: f[k] for k in f.files}
    split = {**{k: v[:48] for k, v in a.items()}, **{f"{k}_test": v[48:] for k, v in a.items() if k != "y"},
             "y_test": a["y"][48:]}
    np.savez(root / "split.npz", **split)
    return path, root / "split.npz"


def test_providers_lists_what_is_here_and_what_brings_the_rest(runner):
    rows = invoke_json(runner, "providers")
    by = {r["name"]: r for r in rows}
    assert by["cpu"]["available"] is True
    assert "onnxruntime-openvino" in by["openvino"]["package"] and "onnxruntime-gpu" in by["cuda"]["package"]


def test_bench_ep_refuses_unknown_and_skips_missing(runner, tmp_path):
    path, data = _text_model(tmp_path)
    assert_usage_error(*invoke(runner, "bench", path, "--data", data, "--ep", "cpu,warpdrive"), "warpdrive",
                       "known: cpu, openvino")
    assert_usage_error(*invoke(runner, "bench", path, "--data", data, "--ep-option", "openvino=1"), "EP:KEY=VALUE")
    r = invoke_json(runner, "bench", path, "--data", data, "--ep", "cpu,rocm", "--runs", "5", "--no-memory")
    assert set(r["models"]) == {"model"}
    assert any("--ep rocm: this onnxruntime has no ROCMExecutionProvider" in n for n in r["notes"])


@pytest.mark.slow
def test_openvino_ep_for_real_without_torch(tmp_path):
    if not Path(OV_PYTHON).is_file():
        pytest.skip(f"no OpenVINO environment at {OV_PYTHON} (make test builds it)")
    path, data = _text_model(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([OV_PYTHON, "-m", "edgekd", "bench", str(path), "--data", str(data), "--ep", "cpu,openvino",
                          "--ep-option", "openvino:device_type=CPU", "--runs", "10", "--seconds", "0.5",
                          "--threads", "1,2", "--batch", "1,8", "--json"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    # the sweep: every (model, EP, threads, batch) once, each with its throughput
    cores = min(2, os.cpu_count() or 1)
    assert sorted((x["model"], x["ep"], x["threads"], x["batch"]) for x in r["records"]) == sorted(
        ("model", ep, t, b) for ep in ("cpu", "openvino") for t in sorted({1, cores}) for b in (1, 8))
    for x in r["records"]:
        assert x["throughput_per_s"] == pytest.approx(x["batch"] * 1000 / x["latency_ms"]["p50"])
    ov = r["models"]["model@openvino"]
    # memory per (model, EP), in a fresh process, over an interpreter with onnxruntime imported
    assert ov["memory"]["provider"] == "OpenVINOExecutionProvider" and ov["memory"]["delta_mb"] > 0
    assert r["models"]["model"]["memory"]["peak_rss_mb"] >= r["models"]["model"]["memory"]["rss_before_mb"]
    assert ov["provider"] == "OpenVINOExecutionProvider"
    assert ov["placement"].get("OpenVINOExecutionProvider", 0) >= 1
    assert ov["agreement_with_cpu"] == pytest.approx(1.0, abs=0.02)
    assert r["models"]["model"]["provider"] == "CPUExecutionProvider"
    assert r["host"]["onnxruntime_package"].startswith("onnxruntime-openvino")
    # an EP that exists but cannot make the session: said, and the CPU carries on
    res = subprocess.run([OV_PYTHON, "-m", "edgekd", "bench", str(path), "--data", str(data), "--ep", "cpu,openvino",
                          "--ep-option", "openvino:device_type=NO_SUCH_DEVICE", "--runs", "5", "--no-memory", "--json"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    bad = json.loads(res.stdout)
    assert set(bad["models"]) == {"model"}
    assert any("model@openvino: the session could not be created" in n for n in bad["notes"]), bad["notes"]
    probe = subprocess.run([OV_PYTHON, "-c", "import torch"], capture_output=True)
    assert probe.returncode != 0  # it really ran without torch
    assert np.isfinite(ov["latency_ms"]["p50"])


def test_threads_beyond_the_cores_are_capped_and_said(runner, tmp_path):
    path, data = _text_model(tmp_path)
    cores = os.cpu_count() or 1
    r = invoke_json(runner, "bench", path, "--data", data, "--threads", str(cores + 7), "--runs", "3", "--no-memory")
    assert r["models"]["model"]["threads"] == cores
    assert any(f"--threads {cores + 7} is more than this machine's {cores} cores" in n for n in r["notes"])


def test_plain_onnx_against_an_onnx_teacher(runner, tmp_path):
    """A device run with ONNX files only: the student compared with its teacher's .onnx (retention, speed-up)."""
    path, data = _text_model(tmp_path)
    r = invoke_json(runner, "bench", path, "--data", data, "--teacher", path, "--runs", "5", "--no-memory")
    t, m = r["models"]["teacher_onnx"], r["models"]["model"]
    assert t["agreement"] == 1.0 and m["agreement"] == 1.0 and m["retention"] == pytest.approx(1.0)
    assert "speedup_vs_teacher_p50" in r["summary"]
    assert_usage_error(*invoke(runner, "bench", path, "--data", data, "--teacher", tmp_path / "no.onnx"),
                       "does not exist")


def test_a_huge_batch_ends_within_the_time_cap(runner, tmp_path):
    """Warm-up and timed runs both stop at --seconds: a batch of 20,000 gets a few runs and a note, not a hang."""
    import time

    path, data = _text_model(tmp_path)
    t0 = time.perf_counter()
    r = invoke_json(runner, "bench", path, "--data", data, "--batch", "20000", "--seconds", "0.3", "--no-memory")
    assert time.perf_counter() - t0 < 60
    lat = r["models"]["model"]["latency_ms"]
    assert 1 <= lat["runs"] < 1000 and any("timed runs (the 0.3 s cap)" in n for n in r["notes"])


def test_a_fixed_batch_too_big_for_the_host_is_refused_naming_it(runner, tmp_path):
    """A graph whose batch is fixed at 2^40: padding the data to one batch was numpy's 'Unable to allocate'."""
    import onnx
    from onnx import TensorProto, helper

    shape = [2**40, 4]
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "big.onnx")
    for step in ("bench", "export"):
        assert_usage_error(*invoke(runner, step, tmp_path / "big.onnx"), "fixed batch size 1099511627776 needs",
                           "dynamic batch axis")


def test_cuda_and_tensorrt_with_io_binding(runner, tmp_path):
    """With onnxruntime-gpu and a GPU, CUDA and TensorRT run with inputs bound on the device; CI has no GPU."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDAExecutionProvider in this onnxruntime (pip install onnxruntime-gpu, on a machine "
                    "with an NVIDIA GPU)")
    path, data = _text_model(tmp_path)
    r = invoke_json(runner, "bench", path, "--data", data, "--ep", "cpu,cuda,tensorrt", "--runs", "20",
                    "--ep-option", "tensorrt:trt_fp16_enable=True", "--no-memory")
    cuda = r["models"]["model@cuda"]
    assert cuda["provider"] == "CUDAExecutionProvider" and cuda["agreement_with_cpu"] == pytest.approx(1, abs=0.02)

"""End to end through the CLI on a tiny teacher: distill -> export -> quantize -> bench, plus the demo parts."""
import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import invoke, invoke_json


def test_distill_export_quantize_bench(project, runner, tmp_path):
    run = tmp_path / "run"
    d = invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data",
                    f"{project}/data.npz", "--student", "mlp:hidden=8", "--epochs", "10", "--lr", "0.01", "--out", run)
    assert d["param_ratio"] >= 10
    assert d["student_accuracy"] > 0.6  # learnable 3-class task; chance is ~0.33
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["steps"]["distill"]["student"]["family"] == "mlp"
    blob = torch.load(run / "student.pt", weights_only=True)  # loadable without pickle
    assert blob["spec"]["kwargs"] == {"hidden": 8}
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 10

    e = invoke_json(runner, "export", run)
    assert e["models"]["student"]["parity"]["passed"]
    model = onnx.load(run / "student.onnx")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis
    sess = ort.InferenceSession(str(run / "student.onnx"), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": np.zeros((5, 16), np.float32)})[0].shape == (5, 3)

    q = invoke_json(runner, "quantize", run, "--max-drop", "0.05", "--mode", "static", "--allow-slower")
    assert q["output"].endswith("student.int8.onnx")
    ops = {n.op_type for n in onnx.load(run / "student.int8.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops

    b = invoke_json(runner, "bench", run, "--runs", "30", "--no-memory")
    assert set(b["models"]) == {"teacher_pytorch", "teacher_onnx", "student_fp32", "student_int8"}
    for m in b["models"].values():
        assert set(m["latency_ms"]) >= {"p50", "p90", "p99", "mean"}
        assert m["latency_ms"]["p50"] <= m["latency_ms"]["p90"] <= m["latency_ms"]["p99"]
        assert m["size_bytes"] > 0 and m["threads"] == 1 and m["batch"] == 1 and m["provider"]
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["agreement"] <= 1
    assert b["models"]["teacher_pytorch"]["retention"] == 1.0
    assert 0.9 <= b["models"]["student_int8"]["agreement_with_student_fp32"] <= 1
    saved = json.loads((run / "bench.json").read_text())
    assert saved["schema_version"] == 2 and saved["models"].keys() == b["models"].keys()
    assert {(r["model"], r["ep"], r["threads"], r["batch"]) for r in saved["records"]} == {
        (k, "pytorch" if k == "teacher_pytorch" else "cpu", 1, 1) for k in b["models"]}
    assert "| student_int8 |" in (run / "report.md").read_text()
    assert set(json.loads((run / "manifest.json").read_text())["steps"]) == {"distill", "export", "quantize",
                                                                             "bench"}


@pytest.mark.parametrize("columns", ["80", "20", "", "abc"])
def test_human_output_is_readable_at_80_columns(project, runner, tmp_path, monkeypatch, columns):
    """Tables fit 80 columns (COLUMNS tiny, unset or junk still renders), the student prints as its spec,
    names are whole, the verdict is in words and `Next:` is a command that runs as printed."""
    monkeypatch.setenv("COLUMNS", columns)
    run = tmp_path / "r"
    code, out, err = invoke(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data",
                            f"{project}/data.npz", "--student", "mlp:hidden=8", "--epochs", "2", "--out", run)
    assert code == 0, err
    words = " ".join(out.split())  # the verdict wraps at the width
    assert "mlp:hidden=8" in out and "fewer parameters than the teacher" in words and "of its accuracy" in words
    nxt = [ln for ln in out.splitlines() if ln.startswith("Next: ")]
    assert nxt == [f"Next: edgekd export {run}"]
    code, out, err = invoke(runner, *nxt[0].split()[2:])  # the hint, as printed
    assert code == 0, err
    invoke(runner, "quantize", run, "--max-drop", "0.5", "--allow-slower")
    code, out, err = invoke(runner, "bench", run, "--runs", "5", "--no-memory")
    assert code == 0, err
    for name in ("teacher_pytorch", "teacher_onnx", "student_fp32", "student_int8"):
        assert name in out
    words = " ".join(out.split())
    assert re.search(r"(faster|slower) than fp32|no measurable difference \(\S+\) from fp32", words), words
    wide = max(80, int(columns)) if columns.isdigit() else 80
    assert all(len(ln) <= max(wide, 60) for ln in out.splitlines()), out
    code, out, err = invoke(runner, "profiles", "list")
    for name in ("raspberry-pi-4", "android-snapdragon-8-gen-2", "x86-server-avx512-vnni"):
        assert name in out


def test_plain_onnx_paths(project, runner, tmp_path):
    """export/quantize/bench also take an .onnx file that edgekd did not make."""
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)).eval()
    path = tmp_path / "mine.onnx"
    torch.onnx.export(m, (torch.zeros(2, 16),), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "b"}})
    e = invoke_json(runner, "export", path)
    assert e["models"]["model"]["input_shape"][1] == 16
    q = invoke_json(runner, "quantize", path, "--data", f"{project}/data.npz", "--max-drop", "1", "--allow-slower")
    assert (tmp_path / "mine.int8.onnx").is_file() and q["size_bytes"] > 0
    b = invoke_json(runner, "bench", path, "--runs", "20", "--no-memory")
    assert b["models"]["model"]["accuracy"] is None  # no data given: latency and size only
    b = invoke_json(runner, "bench", path, "--data", f"{project}/data.npz", "--runs", "20")
    assert b["models"]["model"]["accuracy"] is not None
    assert b["models"]["model"]["memory"]["peak_rss_mb"] > 0


def test_torchscript_and_state_dict_teachers(project, runner, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("t", project / "teacher.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.jit.script(mod.build()).save(str(tmp_path / "teacher.ts"))
    for teacher in (["--teacher", tmp_path / "teacher.ts"],
                    ["--teacher", project / "teacher_weights.pt", "--arch", f"{project}/teacher.py:make"]):
        d = invoke_json(runner, "distill", *teacher, "--data", f"{project}/data.npz", "--student",
                        "mlp:hidden=8", "--epochs", "1", "--out", tmp_path / "r")
        assert d["teacher_accuracy"] > 0.8


def test_same_seed_gives_same_student(project, runner, tmp_path):
    outs = []
    for name in ("a", "b"):
        invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data",
                    f"{project}/data.npz", "--student", "mlp:hidden=8", "--epochs", "2", "--seed", "3",
                    "--out", tmp_path / name)
        outs.append(torch.load(tmp_path / name / "student.pt", weights_only=True)["state_dict"])
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])

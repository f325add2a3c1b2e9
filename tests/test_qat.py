"""Quantization-aware distillation (`quantize --qat`): a run's student fine-tuned with PyTorch's fake
quantization against its teacher, exported as QDQ, checked against onnxruntime's int8 kernels and judged by
the same gate as the post-training candidates."""
import json

import numpy as np
import onnx
import pytest
import torch
from conftest import error_lines, invoke, invoke_json
from test_bad_inputs import assert_usage_error
from test_distill_engine import CNN_PY


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    from click.testing import CliRunner
    from sklearn.datasets import load_digits

    from edgekd.kd.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("qat")
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    np.savez(root / "digits.npz", x=x, y=d.target)
    (root / "nets.py").write_text(CNN_PY)
    ns: dict = {}
    exec(CNN_PY, ns)
    torch.manual_seed(0)
    t = ns["Teacher"]()
    train(t, x, d.target.astype(np.int64), TrainConfig(epochs=8, lr=0.01), show_progress=False)
    torch.save(t.state_dict(), root / "teacher.pt")
    run = root / "run"
    for args in (["distill", "--teacher", f"{root}/nets.py:teacher", "--data", f"{root}/digits.npz", "--student",
                  "mobilenet:width=0.35", "--epochs", "4", "--out", run], ["export", run]):
        invoke_json(CliRunner(), *args)
    return run


@pytest.mark.slow
def test_qat_is_a_candidate_the_gate_judges_beside_ptq(cnn_run, runner):
    """--qat fine-tunes the mobilenet student with fake quantization, exports QDQ that onnxruntime fuses into
    its int8 convs, checks it computes what was trained, and the gate scores and times it like the presets;
    the fastest passing model is kept, whichever made it."""
    q = invoke_json(runner, "quantize", cnn_run, "--qat", "--qat-epochs", "1", "--allow-slower")
    d = q["details"]
    rows = {a["name"]: a for a in d["attempts"]}
    assert rows["qad"]["qad"] is True and rows["u8s8"]["qad"] is False and rows["qad"]["accuracy"] > 0.5
    qad = d["qad"]
    assert qad["epochs"] == 1 and qad["seconds"] > 0 and qad["method"] == "kd" and qad["samples"] >= 400
    p = qad["parity"]
    assert p["passed"] and p["mean_rel_diff"] < 0.005 and p["agreement"] >= 0.99 and p["int8_kernels_agreement"] > 0.9
    assert qad["parity"]["clamps_dropped"] >= 1  # the ReLU6s onnxruntime's quantizer would drop too
    timed = [a for a in d["attempts"] if a.get("passed") and "latency_ms" in a]
    assert "qad" in {a["name"] for a in timed}, rows
    assert d["chosen"] == min(timed, key=lambda a: a["latency_ms"])["name"]
    kept = onnx.load(cnn_run / "student.int8.onnx")
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in kept.graph.node}

    code, text, err = invoke(runner, "quantize", cnn_run, "--qat", "--qat-epochs", "1", "--allow-slower")
    assert code == 0 and "\nqad " in text and "quantization-aware distillation: 1 epoch(s) of kd" in err


@pytest.mark.slow
def test_the_parity_check_catches_an_int8_graph_that_differs_from_training(cnn_run, tmp_path):
    """The fake-quantized student exported and tidied as --qat does passes the check against itself; the same
    graph with one activation scale changed (what a wrong export would do) fails it."""
    from onnx import numpy_helper as nh

    from edgekd.api.qat import parity
    from edgekd.api.rundir import RunDir
    from edgekd.api.target import load_student, read_eval
    from edgekd.deploy.export import to_onnx
    from edgekd.kd import qat
    from edgekd.models.inference import as_args

    run = RunDir(cnn_run)
    student, _ = load_student(run)
    test, calib = read_eval(run)[0]["x"], read_eval(run)[3]["x"]
    fq = qat.prepare(student, as_args(calib[:2]))
    qat.calibrate(fq, [as_args(calib[i:i + 32]) for i in range(0, 128, 32)])
    qat.freeze(fq)
    path = to_onnx(fq, calib, tmp_path / "qad.onnx", exporter="torchscript", opset=13)
    assert qat.tidy(path)["scalar_qparams"] > 0
    good = parity(fq, path, test)
    assert good["passed"] and good["mean_rel_diff"] < 0.005, good

    model = onnx.load(path)
    scale = next(i for i in model.graph.initializer if i.name.endswith(".scale.scalar"))
    scale.CopyFrom(nh.from_array(nh.to_array(scale) * 4, scale.name))
    onnx.save(model, tmp_path / "broken.onnx")
    bad = parity(fq, tmp_path / "broken.onnx", test)
    assert not bad["passed"] and bad["mean_rel_diff"] > good["mean_rel_diff"], bad


def test_qat_is_refused_cleanly_where_it_cannot_run(cnn_run, runner, tmp_path):
    """A plain .onnx has no student to fine-tune; a MatMul graph in dynamic mode has no activation scales."""
    code, out, err = invoke(runner, "quantize", cnn_run / "student.onnx", "--data", tmp_path / "x.npz", "--qat")
    assert code == 2
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 1, 8, 8), np.float32))
    code, out, err = invoke(runner, "quantize", cnn_run / "student.onnx", "--data", tmp_path / "x.npz", "--qat",
                            "--output", tmp_path / "q.onnx")
    assert_usage_error(code, out, err, "--qat fine-tunes a run's student", "edgekd quantize RUN --qat")
    code, out, err = invoke(runner, "quantize", cnn_run, "--qat", "--weights", "fp16")
    assert_usage_error(code, out, err, "--weights int8 and static mode", "drop --qat")


@pytest.mark.slow
def test_qat_without_labels_or_a_teacher_is_refused(runner, tmp_path):
    """A run distilled on unlabeled data whose teacher is gone has nothing to fine-tune with: one line
    says so, and the run's recorded answer stays as it was."""
    from sklearn.datasets import load_digits

    from edgekd.kd.trainer import TrainConfig, train

    d = load_digits()
    x = (d.images[:300] / 16.0).astype(np.float32)[:, None]
    np.savez(tmp_path / "unlabeled.npz", x=x)
    (tmp_path / "nets.py").write_text(CNN_PY)
    ns: dict = {}
    exec(CNN_PY, ns)
    t = ns["Teacher"]()
    train(t, x, d.target[:300].astype(np.int64), TrainConfig(epochs=2, lr=0.01), show_progress=False)
    torch.save(t.state_dict(), tmp_path / "teacher.pt")
    run = tmp_path / "run"
    invoke_json(runner, "distill", "--teacher", f"{tmp_path}/nets.py:teacher", "--data", tmp_path / "unlabeled.npz",
                "--student", "mobilenet:width=0.25,depth=0.5", "--epochs", "1", "--out", run)
    invoke_json(runner, "export", run)
    (tmp_path / "teacher.pt").unlink()  # the teacher no longer loads, and the data has no labels
    code, out, err = invoke(runner, "quantize", run, "--qat")
    assert code == 2 and out == "" and len(error_lines(err)) == 1, err
    assert "--qat needs the teacher's outputs or labels" in err and "quantize without --qat" in err
    assert "quantize" not in json.loads((run / "manifest.json").read_text())["steps"]


@pytest.mark.slow
def test_a_ptq_refusal_on_accuracy_names_qat_and_its_cost_here(cnn_run, runner):
    """No int8 model keeps every top-1 decision (the search stopped after the first preset): the hint's
    next step is --qat, with the minutes distill's own epochs say it will take on this machine."""
    code, text, err = invoke(runner, "quantize", cnn_run, "--metric", "top1", "--max-drop", "0", "--time-limit",
                             "0.01")
    assert code == 0 and "nothing written" in text
    q = invoke_json(runner, "quantize", cnn_run, "--metric", "top1", "--max-drop", "0", "--time-limit", "0.01")
    hint = q["details"]["hint"]
    assert q["written"] is False and q["details"]["chosen"] is None
    assert "or --qat (quantization-aware distillation: about " in hint and " min here)" in hint
    assert "--qat (quantization-aware" in text.replace("\n", " ")

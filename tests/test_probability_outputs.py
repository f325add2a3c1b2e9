"""Teachers whose output is a probability (a sigmoid over sound events, a softmax classifier): told from their
values, distilled in logit space with the matching loss, and the student outputs the same kind, through export,
quantize and bench."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import prob_models
import pytest
from conftest import invoke, invoke_json
from test_bad_inputs import assert_usage_error


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    return prob_models.write_teachers(tmp_path_factory.mktemp("prob"), n=800, epochs=25)


def _onnx(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _label_agreement(run, x):
    s, t = _onnx(run / "student.onnx", x), _onnx(run / "teacher.onnx", x)
    return float(((s > 0.5) == (t > 0.5)).mean()), s


def test_a_sigmoid_teacher_is_distilled_with_bce_and_its_student_outputs_probabilities(teachers, runner, tmp_path):
    x = prob_models.audio_data(300, seed=9)[0]
    got = {}
    for kind in ("auto", "logits"):
        run = tmp_path / kind
        r = invoke_json(runner, "distill", "--teacher", f"{teachers / 'audio.py'}:sigmoid", "--data",
                        teachers / "audio.npz", "--student", "mlp:hidden=64", "--epochs", "12", "--out", run,
                        "--output-kind", kind)
        invoke_json(runner, "export", run)
        got[kind] = (r, *_label_agreement(run, x))
    r, agree, out = got["auto"]
    assert any("sigmoid probabilities" in n for n in r["notes"]) and r["student"]["head"] == "sigmoid"
    assert r["agreement_metric"] == "label_agreement" and r["agreement"] > 0.85
    assert out.min() >= 0 and out.max() <= 1  # the exported student ends in the teacher's sigmoid
    assert agree > 0.85 and agree > got["logits"][1] + 0.05  # probabilities taken as logits: 0.78 (RESULTS.md)
    assert "head" not in got["logits"][0]["student"]
    b = invoke_json(runner, "bench", tmp_path / "auto", "--runs", "5", "--no-memory")
    assert b["models"]["student_fp32"]["agreement_metric"] == "label_agreement"
    assert b["models"]["teacher_onnx"]["agreement"] == pytest.approx(1.0)


def test_a_softmax_teacher_pruned_keeps_its_softmax(teachers, runner, tmp_path):
    run = tmp_path / "run"
    r = invoke_json(runner, "distill", "--teacher", f"{teachers / 'audio.py'}:softmax", "--data",
                    teachers / "events.npz", "--student", "prune:ratio=0.5", "--epochs", "5", "--out", run)
    assert any("softmax probabilities" in n for n in r["notes"]) and "head" not in r["student"]
    assert r["retention"] > 0.95
    invoke_json(runner, "export", run)
    x = np.load(teachers / "events.npz")["x"][:200]
    s, t = _onnx(run / "student.onnx", x), _onnx(run / "teacher.onnx", x)
    assert np.allclose(s.sum(1), 1, atol=1e-4) and (s.argmax(1) == t.argmax(1)).mean() > 0.95


def test_probability_outputs_and_bad_choices(teachers, runner, tmp_path):
    teacher = f"{teachers / 'audio.py'}:sigmoid"
    assert_usage_error(*invoke(runner, "distill", "--teacher", teacher, "--data", teachers / "audio.npz",
                               "--method", "dkd", "--out", tmp_path / "r"), "--method dkd", "sigmoid",
                       "--method kd")
    assert_usage_error(*invoke(runner, "distill", "--teacher", teacher, "--data", teachers / "audio.npz",
                               "--output-kind", "probability", "--out", tmp_path / "r"), "--output-kind")
    assert not (tmp_path / "r").exists()
    from edgekd.deploy.measure import output_activation

    rng = np.random.default_rng(0)
    assert output_activation(rng.normal(size=(64, 5))) == "none"
    assert output_activation(rng.dirichlet(np.ones(5), 64)) == "softmax"
    assert output_activation(rng.random((64, 5))) == "sigmoid"
    assert output_activation(rng.random((64, 1))) == "sigmoid"
    assert output_activation(0.4 + 0.1 * rng.random((64, 3))) == "none"  # an untrained head's small logits

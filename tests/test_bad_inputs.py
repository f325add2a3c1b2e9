"""Every bad input gets one line on stderr naming the problem and a hint, exit 2, no traceback,
and leaves no half-written artifact behind."""
import json

import numpy as np
import pytest
from conftest import error_lines, invoke


def assert_usage_error(code, out, err, *needles):
    assert code == 2, (code, out, err)
    assert out == ""
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ") and "hint:" in lines[0], err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def distill_args(project, out, **over):
    args = {"--teacher": f"{project}/teacher.py:build", "--data": f"{project}/data.npz",
            "--student": "mlp:hidden=8", "--epochs": "1", "--out": str(out)}
    args.update(over)
    return [x for kv in args.items() for x in kv]


@pytest.mark.parametrize("teacher, needle", [
    ("missing.py:build", "does not exist"),
    ("{p}/teacher.py:nope", "no callable 'nope'"),
    ("{p}/teacher.py:not_a_model", "not a torch.nn.Module"),
    ("no_such_module_xyz:build", "cannot import module"),
    ("{p}/nothing.pt", "does not exist"),
])
def test_bad_teacher(project, runner, tmp_path, teacher, needle):
    out = tmp_path / "run"
    code, o, e = invoke(runner, "distill", *distill_args(project, out, **{"--teacher": teacher.format(p=project)}))
    assert_usage_error(code, o, e, needle)
    assert not (out / "student.pt").exists()


@pytest.mark.parametrize("arrays, needle", [
    ({"y": np.zeros(10, np.int64)}, "'x'"),
    ({"inputs": np.zeros((10, 16)), "labels": np.zeros(10)}, "found: inputs, labels"),
])
def test_npz_without_x(project, runner, tmp_path, arrays, needle):
    np.savez(tmp_path / "bad.npz", **arrays)
    args = distill_args(project, tmp_path / "run", **{"--data": str(tmp_path / "bad.npz")})
    code, o, e = invoke(runner, "distill", *args)
    assert_usage_error(code, o, e, "bad.npz", needle)
    assert not (tmp_path / "run").exists()


def test_npz_without_y_needs_a_teacher_method(project, runner, tmp_path):
    """Inputs without labels are data distillation: fine for kd, an error for the label-only ce baseline."""
    np.savez(tmp_path / "unlabeled.npz", x=np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32))
    args = distill_args(project, tmp_path / "run", **{"--data": str(tmp_path / "unlabeled.npz"), "--method": "ce"})
    code, o, e = invoke(runner, "distill", *args)
    assert_usage_error(code, o, e, "needs labels")
    assert not (tmp_path / "run" / "student.pt").exists()


def test_data_that_does_not_fit_the_teacher(project, runner, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wide.npz", x=rng.normal(size=(50, 20)).astype(np.float32), y=rng.integers(0, 3, 50))
    args = distill_args(project, tmp_path / "run", **{"--data": str(tmp_path / "wide.npz")})
    code, o, e = invoke(runner, "distill", *args)
    assert_usage_error(code, o, e, "(N, 20)")


def test_run_dir_without_manifest(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    for cmd in ("export", "quantize", "bench"):
        code, o, e = invoke(runner, cmd, tmp_path / "empty")
        assert_usage_error(code, o, e, "manifest.json")
    code, o, e = invoke(runner, "export", tmp_path / "nowhere")
    assert_usage_error(code, o, e, "does not exist")


def test_quantize_before_export(project, runner, tmp_path):
    run = tmp_path / "run"
    code, _, err = invoke(runner, "distill", *distill_args(project, run))
    assert code == 0, err
    before = json.loads((run / "manifest.json").read_text())
    code, o, e = invoke(runner, "quantize", run)
    assert_usage_error(code, o, e, "student.onnx", f"edgekd export {run}")
    code, o, e = invoke(runner, "bench", run)
    assert_usage_error(code, o, e, "edgekd export")
    assert not (run / "student.int8.onnx").exists()
    assert json.loads((run / "manifest.json").read_text()) == before


def test_unknown_profile_lists_known_ones(project, runner, tmp_path):
    code, o, e = invoke(runner, "distill", *distill_args(project, tmp_path / "r", **{"--profile": "raspbery-pi"}))
    assert_usage_error(code, o, e, "raspberry-pi-4", "did you mean")
    code, o, e = invoke(runner, "profiles", "show", "toaster")
    assert_usage_error(code, o, e, "known:")


@pytest.mark.parametrize("content", [b"this is not onnx at all", None])
def test_non_onnx_and_truncated_files(project, runner, tmp_path, content):
    import torch

    path = tmp_path / "model.onnx"
    if content is None:  # a real model cut in half
        m = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
        torch.onnx.export(m, (torch.zeros(2, 16),), str(path), dynamo=False)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    for args in (["export", path], ["quantize", path, "--data", f"{project}/data.npz"], ["bench", path]):
        code, o, e = invoke(runner, *args)
        assert_usage_error(code, o, e, "model.onnx", "not a valid ONNX model")
    assert not (tmp_path / "model.int8.onnx").exists()


@pytest.mark.parametrize("opt, value, needle", [
    ("--epochs", "0", "--epochs"), ("--alpha", "1.5", "--alpha"), ("--temperature", "0", "--temperature"),
    ("--student", "mlp:hidden=0", "positive"), ("--student", "transformer9", "unknown student family"),
    ("--student", "mlp:width=2", "not a mlp knob"), ("--data", "imagenet", "does not exist"),
])
def test_bad_options(project, runner, tmp_path, opt, value, needle):
    code, o, e = invoke(runner, "distill", *distill_args(project, tmp_path / "r", **{opt: value}))
    assert_usage_error(code, o, e, needle)


def test_data_with_nan_and_bad_labels(project, runner, tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
    cases = {"nan.npz": (np.where(np.arange(40)[:, None] == 3, np.nan, x), np.arange(40) % 3, "NaN or inf"),
             "neg.npz": (x, np.arange(40) % 3 - 1, "negative label"),
             "one.npz": (x, np.zeros(40, np.int64), "single class"),
             "many.npz": (x, np.arange(40) % 7, "labels up to 6"),
             "empty.npz": (x[:0], np.zeros(0, np.int64), "N > 0")}
    for name, (xx, yy, needle) in cases.items():
        np.savez(tmp_path / name, x=xx, y=yy)
        args = distill_args(project, tmp_path / "r", **{"--data": str(tmp_path / name)})
        code, o, e = invoke(runner, "distill", *args)
        assert_usage_error(code, o, e, needle)


@pytest.mark.parametrize("content, needle", [
    ("f1,f2,label\n1.0,2.0,a\n3.0,4.0,caf\xe9\n".encode("latin-1"), "line 3 is not UTF-8 (byte 0xe9"),
    (b"\x00\x01\x02\xff\xfe" * 40, "line 1 is not UTF-8 (byte 0xff")])
def test_a_csv_that_is_not_utf8_names_its_line(project, runner, tmp_path, content, needle):
    (tmp_path / "d.csv").write_bytes(content)
    args = distill_args(project, tmp_path / "run", **{"--data": str(tmp_path / "d.csv")})
    assert_usage_error(*invoke(runner, "distill", *args), needle, "re-save the file as UTF-8")


def test_one_sample_leaves_nothing_to_train_on(project, runner, tmp_path):
    np.savez(tmp_path / "one.npz", x=np.random.default_rng(0).random((1, 16), dtype=np.float32))
    args = distill_args(project, tmp_path / "run", **{"--data": str(tmp_path / "one.npz")})
    assert_usage_error(*invoke(runner, "distill", *args), "has 1 sample: the test (and validation) split took it",
                       "x_test in an .npz")

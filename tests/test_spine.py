"""The spine: PyTorch models with several inputs and outputs, a run directory that stays true, options
declared once, and one error boundary."""
import json
import shutil
import textwrap
import threading

import numpy as np
import onnx
import pytest
from conftest import error_lines, invoke, invoke_json
from test_bad_inputs import assert_usage_error

TEXT_PY = textwrap.dedent('''
    import torch, torch.nn as nn

    class Text(nn.Module):
        """Token ids and a mask in (by keyword), a dict of logits and pooled features out, like HF models."""
        def __init__(self, width, vocab=50, classes=3):
            super().__init__()
            self.emb = nn.Embedding(vocab, width)
            self.ff = nn.Sequential(nn.Linear(width, width), nn.ReLU())
            self.head = nn.Linear(width, classes)

        def forward(self, input_ids, attention_mask):
            h = self.ff(self.emb(input_ids))
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            return {"pooled": pooled, "logits": self.head(pooled)}

    def teacher():
        torch.manual_seed(0)
        model = Text(48)
        with torch.no_grad():  # a teacher that knows the task: the commonest token id mod 3
            model.emb.weight.zero_()
            model.emb.weight[torch.arange(50), torch.arange(50) % 3] = 4.0
            model.ff[0].weight.copy_(torch.eye(48)); model.ff[0].bias.zero_()
            model.head.weight.zero_(); model.head.bias.zero_()
            model.head.weight[:, :3] = torch.eye(3) * 5
        return model

    def student():
        return Text(12)
''')


@pytest.fixture(scope="module")
def text_project(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    (root / "text_models.py").write_text(TEXT_PY)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (240, 10)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[:, 7:] = 0
    counts = np.stack([((ids[:, :7] % 3) == c).sum(1) for c in range(3)], 1)
    np.savez(root / "text.npz", input_ids=ids, attention_mask=mask, y=counts.argmax(1))  # the teacher's rule
    return root


def distill_text(runner, root, out, *extra):
    return invoke_json(runner, "distill", "--teacher", f"{root}/text_models.py:teacher", "--data",
                       root / "text.npz", "--student", f"{root}/text_models.py:student", "--epochs", "15",
                       "--lr", "0.02", "--out", out, *extra)


@pytest.mark.slow
def test_multi_input_dict_output_teacher_through_every_step(text_project, runner, tmp_path):
    run = tmp_path / "run"
    d = distill_text(runner, text_project, run)
    assert d["teacher_accuracy"] == 1.0 and d["student_accuracy"] > 0.5
    manifest = json.loads((run / "manifest.json").read_text())
    io = manifest["steps"]["distill"]["io"]
    assert [(t["name"], t["dtype"]) for t in io["inputs"]] == [("input_ids", "int64"), ("attention_mask", "int64")]
    assert manifest["steps"]["distill"]["teacher"]["output"] == "logits"

    invoke_json(runner, "export", run)
    graph = onnx.load(run / "student.onnx").graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64  # never cast to float
    invoke_json(runner, "quantize", run, "--max-drop", "0.3", "--allow-slower")
    b = invoke_json(runner, "bench", run, "--runs", "5", "--no-memory")
    assert set(b["models"]) == {"teacher_pytorch", "teacher_onnx", "student_fp32", "student_int8"}
    assert b["models"]["teacher_onnx"]["accuracy"] == 1.0
    assert b["models"]["student_fp32"]["inputs"] == {"input_ids": [1, 10], "attention_mask": [1, 10]}
    # why int8 won or lost: the dynamic int8 MatMuls against fp32's, in the verdict and the report
    e = b["int8_explained"]
    assert {g["name"]: g for g in e["groups"]}["matmul"]["int8_kernels"] >= 1 and e["reason"] in b["verdict"]
    md = (run / "report.md").read_text()
    assert "int8 op by op, on this machine" in md and e["reason"] in md


def test_output_names_the_output_to_distil(text_project, runner, tmp_path):
    code, o, e = invoke(runner, "distill", "--teacher", f"{text_project}/text_models.py:teacher", "--data",
                        text_project / "text.npz", "--student", f"{text_project}/text_models.py:student",
                        "--output", "scores", "--out", tmp_path / "r")
    assert_usage_error(code, o, e, "'scores'", "outputs: pooled, logits")
    code, o, e = invoke(runner, "distill", "--teacher", f"{text_project}/text_models.py:teacher", "--data",
                        text_project / "text.npz", "--out", tmp_path / "r")
    assert_usage_error(code, o, e, "take one input", "input_ids, attention_mask")


def test_redistilling_invalidates_later_steps(project, runner, tmp_path):
    run = tmp_path / "run"
    args = ["distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz", "--student",
            "mlp:hidden=8", "--epochs", "2", "--out", run]
    assert invoke(runner, *args)[0] == 0
    invoke_json(runner, "export", run)
    invoke_json(runner, "bench", run, "--runs", "5", "--no-memory")
    code, o, e = invoke(runner, *args)
    assert_usage_error(code, o, e, "export, bench", "--force")
    assert (run / "bench.json").exists()
    code, o, e = invoke(runner, *args, "--force")
    assert code == 0, e
    assert not (run / "student.onnx").exists() and not (run / "bench.json").exists()
    assert set(json.loads((run / "manifest.json").read_text())["steps"]) == {"distill"}


def test_steps_check_the_files_they_read_and_the_run_can_move(project, runner, tmp_path):
    run = tmp_path / "run"
    assert invoke(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                  "--student", "mlp:hidden=8", "--epochs", "2", "--out", run)[0] == 0
    invoke_json(runner, "export", run)
    invoke_json(runner, "quantize", run, "--max-drop", "0.2", "--allow-slower")
    code, o, e = invoke(runner, "quantize", run / "student.onnx", "--data", f"{project}/data.npz")
    assert_usage_error(code, o, e, "student.int8.onnx", "would be replaced")

    moved = tmp_path / "elsewhere" / "run"
    shutil.move(str(run), str(moved))
    b = invoke_json(runner, "bench", moved, "--runs", "5", "--no-memory")
    assert b["models"]["student_int8"]["accuracy"] is not None
    manifest = json.loads((moved / "manifest.json").read_text())
    assert manifest["steps"]["export"]["models"]["student"]["path"] == "student.onnx"  # relative to the run

    data = bytearray((moved / "student.onnx").read_bytes())
    (moved / "student.onnx").write_bytes(bytes(data) + b"\0")  # changed behind the manifest's back
    code, o, e = invoke(runner, "bench", moved, "--no-memory")
    assert_usage_error(code, o, e, "student.onnx changed", f"edgekd export {moved}")


def test_concurrent_records_lose_nothing(tmp_path):
    from edgekd.api.rundir import RunDir

    run = RunDir.create(tmp_path / "run")
    threads = [threading.Thread(target=lambda i=i: [run.record(f"s{i}_{k}", {"k": k}) for k in range(25)])
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(run.manifest["steps"]) == 200


def test_method_options_reach_the_loss(project, runner, tmp_path):
    d = invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data",
                    f"{project}/data.npz", "--student", "mlp:hidden=8", "--epochs", "1", "--method",
                    "dkd:alpha=0.5,beta=2", "--out", tmp_path / "r")
    assert d["method"] == "dkd:alpha=0.5,beta=2"
    code, o, e = invoke(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data",
                        f"{project}/data.npz", "--method", "dkd:gamma=1", "--out", tmp_path / "r2")
    assert_usage_error(code, o, e, "no option 'gamma'", "alpha, beta")


def test_pipeline_takes_every_step_option(project, runner, tmp_path):
    """pipeline's options are distill's, export's, quantize's and bench's; each reaches its step."""
    r = invoke_json(runner, "pipeline", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                    "--student", "mlp:hidden=8", "--epochs", "2", "--batch-size", "32", "--exporter", "torchscript",
                    "--max-drop", "0.3", "--calib-samples", "16", "--allow-slower", "--runs", "7", "--no-memory",
                    "--out", tmp_path / "p")
    assert r["export"]["models"]["student"]["exporter"] == "torchscript"
    assert r["quantize"]["details"]["max_drop"] == 0.3
    assert r["bench"]["settings"]["runs"] == 7
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["steps"]["distill"]["config"]["batch_size"] == 32
    assert manifest["steps"]["quantize"]["calib_samples"] == 16


def test_library_and_click_failures_are_one_line(project, runner, tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("Mystery", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / "x.npz", x=np.zeros((8, 4), np.float32))
    for args in (["export", path], ["bench", path], ["quantize", path, "--data", tmp_path / "x.npz"]):
        code, o, e = invoke(runner, *args)
        lines = error_lines(e)
        assert code == 1 and len(lines) == 1 and "Mystery" in lines[0] and "hint:" in lines[0], e
    code, o, e = invoke(runner, "bench")
    assert_usage_error(code, o, e, "Missing argument 'TARGET'", "bench --help")
    code, o, e = invoke(runner, "bench", path, "--threads", "0")
    assert_usage_error(code, o, e, "--threads")


AUDIO_PY = textwrap.dedent('''
    import torch, torch.nn as nn

    class Audio(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.enc, self.head = nn.Linear(64, width), nn.Linear(width, 3)

        def forward(self, audio, sr):  # sr: an int64 scalar, the same for every sample
            return self.head(torch.relu(self.enc(audio * (sr.float() / 16000))))

    def teacher():
        torch.manual_seed(0)
        return Audio(64)

    def student():
        return Audio(8)
''')


def test_a_constant_input_reaches_teacher_and_student_in_every_step(runner, tmp_path):
    """`sr` has no sample axis in the npz: it is fed as it is to the teacher in distill, export and bench,
    and built into the exported student."""
    (tmp_path / "audio.py").write_text(AUDIO_PY)
    x = np.random.default_rng(0).normal(size=(120, 64)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    np.savez(tmp_path / "a.npz", audio=x, sr=np.array(16000, np.int64), y=y)
    run = tmp_path / "run"
    invoke_json(runner, "distill", "--teacher", f"{tmp_path}/audio.py:teacher", "--student",
                f"{tmp_path}/audio.py:student", "--data", tmp_path / "a.npz", "--epochs", "2", "--out", run)
    e = invoke_json(runner, "export", run)
    assert "parity" in e["models"]["teacher"], e["models"]["teacher"]
    b = invoke_json(runner, "bench", run, "--runs", "3", "--no-memory")
    assert b["models"]["teacher_pytorch"]["accuracy"] == b["models"]["teacher_onnx"]["accuracy"]
    assert b["models"]["student_fp32"]["inputs"] == {"audio": [1, 64]}


@pytest.fixture()
def small_disk(tmp_path):
    """A 48 KB tmpfs (a full disk in the making), read-only on request; skipped where mount is not allowed."""
    import subprocess

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_and_read_only_disks_are_one_line(project, runner, small_disk):
    import subprocess

    args = ["distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz", "--student",
            "mlp:hidden=8", "--epochs", "1"]
    (small_disk / "filler").write_bytes(b"\0" * 30_000)
    code, o, e = invoke(runner, *args, "--out", small_disk / "run")
    lines = error_lines(e)
    assert code == 1 and len(lines) == 1 and "disk is full" in lines[0] and "hint:" in lines[0], e
    assert not list((small_disk / "run").glob(".*.tmp"))  # no half-written artifact left behind
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    code, o, e = invoke(runner, *args, "--out", small_disk / "other")
    lines = error_lines(e)
    assert code == 1 and len(lines) == 1 and "read-only" in lines[0], e

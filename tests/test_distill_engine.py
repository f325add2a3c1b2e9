"""The distillation engine end to end on real tiny models: every method, feature hooks, caching,
resume after kill -9, early stopping, data formats, torchrun with 2 processes."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from conftest import invoke, invoke_json
from test_bad_inputs import assert_usage_error

CNN_PY = textwrap.dedent('''
    import torch.nn as nn

    class Teacher(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
            self.block = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))

        def forward(self, x):
            return self.head(self.block(self.stem(x)))

    def teacher():
        import pathlib
        import torch
        model = Teacher()
        model.load_state_dict(torch.load(pathlib.Path(__file__).with_name("teacher.pt"), weights_only=True))
        return model

    class Unstable(nn.Module):
        """Returns NaN logits for the darker digits (sqrt of a negative number)."""
        def __init__(self):
            super().__init__()
            self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.fc(x) + (x.flatten(1).mean(1, keepdim=True) - 0.3).sqrt()

    def unstable():
        return Unstable()

    def five_class_student():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
''')


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    """A digits subset as .npz plus a small CNN teacher trained on it for a few epochs."""
    from sklearn.datasets import load_digits

    from edgekd.kd.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("cnn")
    d = load_digits()
    x = (d.images[:400] / 16.0).astype(np.float32)[:, None]
    np.savez(root / "digits.npz", x=x, y=d.target[:400])
    (root / "nets.py").write_text(CNN_PY)
    ns: dict = {}
    exec(CNN_PY, ns)
    torch.manual_seed(0)
    t = ns["Teacher"]()
    train(t, x, d.target[:400].astype(np.int64), TrainConfig(epochs=8, lr=0.01), show_progress=False)
    torch.save(t.state_dict(), root / "teacher.pt")
    return root


def distill(runner, cnn, out, *extra):
    return invoke_json(runner, "distill", "--teacher", f"{cnn}/nets.py:teacher", "--data", f"{cnn}/digits.npz",
                       "--student", "mobilenet:width=0.25,depth=0.5", "--epochs", "2", "--out", out, *extra)


@pytest.mark.parametrize("method, fmap", [
    ("ce", None), ("kd", None), ("dkd", None), ("rkd", None), ("cosine", None), ("kd+hint:0.5", None),
    ("kd+hint:0.5", "block.0:4"), ("kd+at:100", "block:4"), ("kd+rkd:0.5+cosine:0.5", None),
])
def test_every_method_trains(runner, cnn, tmp_path, method, fmap):
    extra = ["--method", method] + (["--feature-map", fmap] if fmap else [])
    d = distill(runner, cnn, tmp_path / "r", *extra)
    assert d["method"] == method and d["epochs"] == 2
    rows = [json.loads(r) for r in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    terms = [n.split(":")[0] for n in method.split("+")]
    assert all(f"loss_{t}" in rows[-1] and np.isfinite(rows[-1][f"loss_{t}"]) for t in terms)
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())["steps"]["distill"]
    if any(t in ("hint", "at", "cosine", "rkd") for t in terms):
        assert manifest["feature_map"] == [fmap if fmap else "head.3@in:13@in"]  # default: penultimate embeddings


def test_distillation_beats_chance_and_projection_is_not_exported(runner, cnn, tmp_path):
    d = invoke_json(runner, "distill", "--teacher", f"{cnn}/nets.py:teacher", "--data", f"{cnn}/digits.npz",
                    "--student", "mlp:hidden=32", "--epochs", "6", "--lr", "0.01", "--method", "kd+hint:0.5",
                    "--out", tmp_path / "r")
    assert d["agreement"] > 0.3  # 10 classes: chance is 0.1
    state = torch.load(tmp_path / "r" / "student.pt", weights_only=True)["state_dict"]
    assert not any("proj" in k for k in state)


def test_wrong_feature_name_lists_nearest(runner, cnn, tmp_path):
    code, o, e = invoke(runner, "distill", "--teacher", f"{cnn}/nets.py:teacher", "--data", f"{cnn}/digits.npz",
                        "--student", "mobilenet:width=0.25", "--epochs", "1", "--out", tmp_path / "r",
                        "--method", "kd+hint", "--feature-map", "blok.0:4")
    assert_usage_error(code, o, e, "no module 'blok.0'", "block.0")
    code, o, e = invoke(runner, "distill", "--teacher", f"{cnn}/nets.py:teacher", "--data", f"{cnn}/digits.npz",
                        "--student", "mlp:hidden=16", "--epochs", "1", "--out", tmp_path / "r", "--method", "kd+at")
    assert_usage_error(code, o, e, "attention transfer needs CNN feature maps")


def test_output_sizes_must_match(runner, cnn, tmp_path):
    code, o, e = invoke(runner, "distill", "--teacher", f"{cnn}/nets.py:teacher", "--data", f"{cnn}/digits.npz",
                        "--student", f"{cnn}/nets.py:five_class_student", "--epochs", "1", "--out", tmp_path / "r")
    assert_usage_error(code, o, e, "student outputs (5,)", "teacher outputs 10")


def test_cache_modes_give_the_same_student(runner, cnn, tmp_path):
    states = {}
    for mode in ("memory", "disk", "off"):
        d = distill(runner, cnn, tmp_path / mode, "--method", "kd+hint:0.5", "--cache", mode)
        assert d["cache"] == mode
        states[mode] = torch.load(tmp_path / mode / "student.pt", weights_only=True)["state_dict"]
    for mode in ("disk", "off"):
        for k, v in states["memory"].items():
            torch.testing.assert_close(states[mode][k], v, rtol=1e-4, atol=1e-5)
    assert (tmp_path / "disk" / "cache" / "teacher_0.npy").is_file()


@pytest.mark.slow
def test_resume_after_kill_matches_an_uninterrupted_run(cnn, tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(tmp_path / "all.npz", x=(d.images / 16.0).astype(np.float32)[:, None], y=d.target)
    args = [sys.executable, "-m", "edgekd", "distill", "--teacher", f"{cnn}/nets.py:teacher", "--data",
            str(tmp_path / "all.npz"), "--student", "mobilenet:width=0.5", "--epochs", "8", "--json"]
    subprocess.run([*args, "--out", str(tmp_path / "full")], check=True, capture_output=True)
    run = tmp_path / "crash"
    proc = subprocess.Popen([*args, "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run / "metrics.jsonl"
    while proc.poll() is None:  # the event, not a clock: a loaded machine takes as long as it takes
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (run / "student.pt").exists()
    res = subprocess.run([*args, "--out", str(run), "--resume"], check=True, capture_output=True, text=True)
    assert json.loads(res.stdout)["resumed_from"] >= 2
    a = torch.load(tmp_path / "full" / "student.pt", weights_only=True)["state_dict"]
    b = torch.load(run / "student.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [json.loads(r)["epoch"] for r in metrics.read_text().splitlines()] == list(range(1, 9))


def test_resume_refuses_another_configuration(runner, cnn, tmp_path):
    distill(runner, cnn, tmp_path / "r")
    code, o, e = invoke(runner, "distill", "--teacher", f"{cnn}/nets.py:teacher", "--data", f"{cnn}/digits.npz",
                        "--student", "mobilenet:width=0.25,depth=0.5", "--epochs", "2", "--out", tmp_path / "r",
                        "--lr", "0.01", "--resume")
    assert_usage_error(code, o, e, "another configuration", "lr: checkpoint 0.003, now 0.01")


def test_diverging_loss_stops_and_names_the_term(runner, cnn, tmp_path):
    code, o, e = invoke(runner, "distill", "--teacher", f"{cnn}/nets.py:unstable", "--data", f"{cnn}/digits.npz",
                        "--student", "mlp:hidden=8", "--epochs", "2", "--out", tmp_path / "r", "--method", "kd")
    assert code == 1 and "loss term `kd` became nan" in e and "Traceback" not in e
    assert not (tmp_path / "r" / "student.pt").exists()


def test_early_stopping_and_validation(runner, cnn, tmp_path):
    d = distill(runner, cnn, tmp_path / "r", "--epochs", "40", "--val-split", "0.2", "--patience", "1",
                "--lr", "0.05")
    assert d["stopped_early"] and d["epochs"] < 40 and 1 <= d["best_epoch"] <= d["epochs"]
    rows = [json.loads(r) for r in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all("val_score" in r for r in rows)


def test_data_distillation_from_unlabeled_transfer_set(runner, cnn, tmp_path):
    x = np.load(cnn / "digits.npz")["x"]
    np.save(tmp_path / "transfer.npy", x[:200])
    d = distill(runner, cnn, tmp_path / "a", "--unlabeled", str(tmp_path / "transfer.npy"))
    assert d["student_accuracy"] is not None
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())["steps"]["distill"]
    assert manifest["data"]["labeled_fraction"] < 0.7 and "teacher labels them" in manifest["notes"][0]
    d = invoke_json(runner, "distill", "--teacher", f"{cnn}/nets.py:teacher", "--data", tmp_path / "transfer.npy",
                    "--student", "mlp:hidden=16", "--epochs", "2", "--out", tmp_path / "b")
    assert d["student_accuracy"] is None and 0 <= d["agreement"] <= 1  # no labels at all: agreement only


def test_image_folder_csv_and_augmentation(runner, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, colour in (("cat", 40), ("dog", 200)):
        (tmp_path / "img" / c).mkdir(parents=True)
        for i in range(12):
            arr = np.clip(rng.normal(colour, 20, (10, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / "img" / c / f"{i}.png")
    (tmp_path / "t.py").write_text(textwrap.dedent('''
        import torch.nn as nn
        def cnn():
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        def mlp():
            return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    '''))
    d = invoke_json(runner, "distill", "--teacher", f"{tmp_path}/t.py:cnn", "--data", tmp_path / "img",
                    "--image-size", "8", "--student", "resnet:width=0.25", "--epochs", "1", "--out", tmp_path / "r")
    assert d["cache"] == "off"  # augmentation is on by default for image folders
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())["steps"]["distill"]
    assert m["data"]["input_shape"] == [3, 8, 8] and m["config"]["augment"] is True
    d = invoke_json(runner, "distill", "--teacher", f"{tmp_path}/t.py:cnn", "--data", tmp_path / "img",
                    "--image-size", "8", "--no-augment", "--student", "resnet:width=0.25", "--epochs", "1",
                    "--out", tmp_path / "r2")
    assert d["cache"] == "memory"
    rows = ["a,b,c,species"] + [f"{rng.normal()},{rng.normal()},{rng.normal()},{'x' if i % 2 else 'y'}"
                                for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows))
    d = invoke_json(runner, "distill", "--teacher", f"{tmp_path}/t.py:mlp", "--data", tmp_path / "t.csv",
                    "--label-column", "species", "--student", "mlp:hidden=4", "--epochs", "1", "--out", tmp_path / "r3")
    assert d["student_accuracy"] is not None
    code, o, e = invoke(runner, "distill", "--teacher", f"{tmp_path}/t.py:mlp", "--data", tmp_path / "t.csv",
                        "--student", "mlp:hidden=4", "--epochs", "1", "--out", tmp_path / "r4")
    assert_usage_error(code, o, e, "no label column 'label'", "species")


def test_transformer_student_on_sequences(runner, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6, 5)).astype(np.float32)
    np.savez(tmp_path / "seq.npz", x=x, y=(x.mean((1, 2)) > 0).astype(np.int64))
    (tmp_path / "t.py").write_text("import torch.nn as nn\ndef t():\n    return nn.Sequential(nn.Flatten(), "
                                   "nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2))\n")
    d = invoke_json(runner, "distill", "--teacher", f"{tmp_path}/t.py:t", "--data", tmp_path / "seq.npz",
                    "--student", "transformer:hidden=16,layers=1,heads=2", "--epochs", "2", "--out", tmp_path / "r")
    assert d["student"]["family"] == "transformer"
    e = invoke_json(runner, "export", tmp_path / "r")
    assert e["models"]["student"]["parity"]["passed"]


@pytest.mark.slow
def test_torchrun_two_processes_match_single_process(cnn, tmp_path):
    common = ["distill", "--teacher", f"{cnn}/nets.py:teacher", "--data", f"{cnn}/digits.npz", "--student",
              "mlp:hidden=32", "--epochs", "3", "--batch-size", "64", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "edgekd", *common, "--out", str(tmp_path / "one")], check=True,
                   capture_output=True, env=env)
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29533", "-m", "edgekd", *common, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["epochs"] == 3  # only rank 0 reports
    a = torch.load(tmp_path / "one" / "student.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "two" / "student.pt", weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)
    m = json.loads((tmp_path / "two" / "manifest.json").read_text())["steps"]["distill"]
    assert m["config"]["method"] == "kd"

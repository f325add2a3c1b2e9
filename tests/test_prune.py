"""`--student prune`: the teacher itself with a share of its channels cut by Torch-Pruning (coupled channels
of residual adds followed), its kept weights the teacher's, then distilled, exported and benched like any
student; export rebuilds it from the teacher's code and the recorded sizes."""
import json
import textwrap

import numpy as np
import pytest
import torch
from conftest import invoke, invoke_json
from test_bad_inputs import assert_usage_error

pytest.importorskip("torch_pruning")

NETS = textwrap.dedent('''
    import pathlib
    import torch
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

        def forward(self, x):
            return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


    class ResNet(nn.Module):  # a residual classifier: the adds couple the block's channels to the stem's
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
            self.block1, self.block2 = Block(32), Block(32)
            self.down = nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU())
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(self.down(self.block2(self.block1(self.stem(x)))).mean((2, 3)))


    class Detector(nn.Module):  # boxes and sigmoid scores concatenated in one output, as YOLO heads do
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                                      nn.ReLU())
            self.box, self.cls = nn.Conv2d(32, 4, 1), nn.Conv2d(32, 10, 1)

        def forward(self, x):
            f = self.body(x)
            return torch.cat([self.box(f) * 8.0, torch.sigmoid(self.cls(f))], 1).mean((2, 3))


    def build(cls=ResNet):
        m = cls()
        m.load_state_dict(torch.load(pathlib.Path(__file__).with_name(f"{cls.__name__}.pt"), weights_only=True))
        return m


    def detector():
        return build(Detector)
''')


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    from edgekd.data import load
    from edgekd.kd.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("prune")
    (root / "nets.py").write_text(NETS)
    ns: dict = {}
    exec(NETS, ns)
    ds = load("digits")
    torch.manual_seed(0)
    for cls in (ns["ResNet"], ns["Detector"]):
        m = cls()
        if cls.__name__ == "ResNet":
            train(m, ds.x_train, ds.y_train, TrainConfig(epochs=4, alpha=0.0, seed=0), show_progress=False)
        torch.save(m.state_dict(), root / f"{cls.__name__}.pt")
    return root


def test_a_pruned_residual_teacher_is_distilled_exported_and_benched(nets, runner, tmp_path):
    run = tmp_path / "run"
    d = invoke_json(runner, "distill", "--teacher", f"{nets}/nets.py:build", "--data", "digits", "--student",
                    "prune:ratio=0.5", "--epochs", "2", "--out", run)
    assert d["student"]["family"] == "prune" and d["student"]["kwargs"]["ratio"] == 0.5
    assert d["student_params"] < 0.5 * d["teacher_params"] and d["init"].startswith("the teacher pruned")
    sizes = d["student"]["structure"]
    assert sizes["stem.0"]["out_channels"] == 16 and sizes["block1.conv1"] == {"in_channels": 16, "out_channels": 16}
    assert "out_features" not in sizes.get("fc", {})  # the classifier keeps its 10 classes
    assert all(v % 8 == 0 for s in sizes.values() for k, v in s.items() if k.endswith("channels"))
    assert d["retention"] > 0.9, d
    e = invoke_json(runner, "export", run)  # rebuilt from the teacher's code and the recorded sizes
    assert e["models"]["student"]["parity"]["passed"] and e["models"]["student"]["parity"]["max_abs_diff"] < 1e-3
    import onnx

    convs = [n for n in onnx.load(run / "student.onnx").graph.initializer if len(n.dims) == 4]
    assert sorted({w.dims[0] for w in convs}) == [16, 64]  # the 32-wide stem and blocks halved
    b = invoke_json(runner, "bench", run, "--runs", "5", "--no-memory")
    assert {"teacher_onnx", "student_fp32"} <= set(b["models"])


def test_layers_that_make_the_outputs_keep_them(nets, runner, tmp_path):
    """A head whose boxes and scores are concatenated: both convs keep their output channels (4 + 10)."""
    import edgekd
    from edgekd.models.inference import unwrap
    from edgekd.models.prune import output_layers

    ns: dict = {}
    exec(NETS, ns)
    det = ns["Detector"]()
    found = {id(m) for m in output_layers(det, (torch.randn(2, 1, 8, 8),))}
    assert found == {id(det.box), id(det.cls)}
    run = tmp_path / "det"
    d = edgekd.distill(f"{nets}/nets.py:detector", "digits", run, student="prune:ratio=0.5", epochs=1,
                       method="kd", show_progress=False)
    assert d.student["structure"]["body.0"]["out_channels"] == 16
    assert "out_channels" not in d.student["structure"].get("box", {})
    from edgekd.api.rundir import RunDir
    from edgekd.api.target import load_student

    model, _ = load_student(RunDir.open(run))
    out = unwrap(model)(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 14)


def test_iterative_pruning_distils_between_the_cuts_and_rebuilds_like_one_cut(nets, runner, tmp_path):
    """prune:steps=3 reaches the ratio in 3 cuts with an equal share of the epochs after each of the first two;
    the student has the one-cut structure's sizes and goes through export like any pruned student."""
    run = tmp_path / "run"
    d = invoke_json(runner, "distill", "--teacher", f"{nets}/nets.py:build", "--data", "digits", "--student",
                    "prune:ratio=0.5,steps=3", "--epochs", "6", "--out", run)
    assert "pruned in 3 steps, each but the last followed by 2 epoch(s) of distillation; then 2 epoch(s)" in \
        " ".join(d["notes"])
    assert d["epochs"] == 2 and d["student"]["kwargs"]["steps"] == 3 and d["retention"] > 0.8
    one = invoke_json(runner, "distill", "--teacher", f"{nets}/nets.py:build", "--data", "digits", "--student",
                      "prune:ratio=0.5", "--epochs", "1", "--out", tmp_path / "one")
    assert d["student_params"] == one["student_params"]  # the same schedule ends at the same sizes
    e = invoke_json(runner, "export", run)
    assert e["models"]["student"]["parity"]["passed"] and e["models"]["student"]["parity"]["max_abs_diff"] < 1e-3


def test_a_teacher_whose_channels_cannot_be_followed_is_refused_in_one_line(runner, tmp_path):
    """Channels sliced and repeated between two layers: DepGraph cannot couple them, so nothing is prunable —
    an error naming why and what to use, not a student identical to its teacher."""
    (tmp_path / "t.py").write_text(
        "import torch.nn as nn\n"
        "class Tiled(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.a = nn.Linear(16, 32); self.b = nn.Linear(32, 3)\n"
        "    def forward(self, x):\n"
        "        return self.b(self.a(x)[:, :8].repeat(1, 4))\n"
        "def build():\n"
        "    return Tiled().eval()\n")
    x = np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    assert_usage_error(*invoke(runner, "distill", "--teacher", f"{tmp_path}/t.py:build", "--data",
                               tmp_path / "d.npz", "--student", "prune:ratio=0.5,rounding=1", "--out",
                               tmp_path / "r"), "found no channel", "cannot follow", "--student mobilenet")
    assert not (tmp_path / "r").exists()


def test_the_rebuild_needs_no_pruning_and_refuses_a_mismatch(nets):
    from edgekd.models.prune import prune, rebuild

    ns: dict = {}
    exec(NETS, ns)
    teacher = ns["ResNet"]().eval()
    x = torch.randn(2, 1, 8, 8)
    student, sizes = prune(teacher, (x,), {"ratio": 0.25, "importance": "l1", "rounding": 8, "global": 0})
    again = rebuild(teacher, json.loads(json.dumps(sizes)), student.state_dict())
    assert torch.allclose(again.eval()(x), student(x), atol=1e-6)
    bad = {**student.state_dict(), "fc.weight": torch.zeros(10, 7)}
    with pytest.raises(RuntimeError):
        rebuild(teacher, sizes, bad)
    assert np.isclose(sum(p.numel() for p in teacher.parameters()), 56618)  # the teacher itself is untouched


@pytest.mark.parametrize("spec,needle", [("prune:ratio=1.5", "between 0 and 1"),
                                         ("prune:importance=taylor", "importance 'taylor' is not one of"),
                                         ("prune:ratoi=0.5", "is not a prune knob"),
                                         ("prune:ratio=half", "is not a number"),
                                         ("prune:steps=0", "steps must be in [1, 100]")])
def test_bad_prune_specs_are_one_line(nets, runner, tmp_path, spec, needle):
    code, out, err = invoke(runner, "distill", "--teacher", f"{nets}/nets.py:build", "--data", "digits",
                            "--student", spec, "--out", tmp_path / "r")
    assert_usage_error(code, out, err, needle)


def test_a_pruned_student_is_sized_by_bisection_to_a_speedup_on_the_profile(nets, runner, tmp_path):
    """`--student prune --profile P --speedup 2`: the least ratio whose pruned copy is predicted 2x faster than
    the teacher on P; without a profile the budget options are refused; a ratio that prunes nothing is said."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x.mean((1, 2, 3)) > 0).astype(np.int64))
    d = invoke_json(runner, "distill", "--teacher", f"{nets}/nets.py:build", "--data", tmp_path / "d.npz",
                    "--student", "prune", "--profile", "raspberry-pi-4", "--speedup", "2", "--epochs", "1",
                    "--out", tmp_path / "run")
    sz = d["sizing"]
    assert sz["family"] == "prune" and 0.05 <= d["student"]["kwargs"]["ratio"] <= 0.75
    assert sz["teacher"]["predicted_ms"] / sz["chosen"]["predicted_ms"] >= 2.0 and len(sz["candidates"]) >= 2
    assert any(n.startswith("prune:ratio=") and "2x faster than the teacher" in n for n in d["notes"])
    sized = invoke_json(runner, "size", "--teacher", f"{nets}/nets.py:build", "--data", tmp_path / "d.npz",
                        "--student", "prune", "--profile", "raspberry-pi-4", "--speedup", "2")
    assert sized["chosen"]["spec"] == f"prune:ratio={d['student']['kwargs']['ratio']:.3g}"  # the same search
    code, out, err = invoke(runner, "size", "--teacher", f"{nets}/nets.py:build", "--data", tmp_path / "d.npz",
                            "--student", "prune", "--profile", "raspberry-pi-4", "--speedup", "2")
    assert code == 0 and "prune students on raspberry-pi-4" in out and "prune:ratio=" in out
    assert_usage_error(*invoke(runner, "size", "--teacher", f"{nets}/nets.py:build", "--data", tmp_path / "d.npz",
                               "--student", "prune:ratio=0.5", "--profile", "raspberry-pi-4"), "searches the ratio")
    code, out, err = invoke(runner, "distill", "--teacher", f"{nets}/nets.py:build", "--data", "digits",
                            "--student", "prune", "--speedup", "2", "--out", tmp_path / "r")
    assert_usage_error(code, out, err, "size a pruned student on a --profile")
    code, out, err = invoke(runner, "distill", "--teacher", f"{nets}/nets.py:build", "--data", "digits",
                            "--student", "prune:ratio=0.9", "--out", tmp_path / "r2")
    assert_usage_error(code, out, err, "removed none", "prune:rounding=1")

"""Student sizing: the search over a family's grid against a profile's budgets, and closing the loop
with predicted-vs-measured latency in bench."""
import json

import pytest
import torch
from conftest import invoke, invoke_json
from test_bad_inputs import assert_usage_error

from edgekd.api.size import init_from_teacher


def size_args(project, *extra):
    return ["size", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz", "--profile",
            "raspberry-pi", "--student", "mlp", "--quantize", "none", *extra]


def test_size_picks_the_largest_candidate_that_fits(project, runner):
    res = invoke_json(runner, *size_args(project, "--budget-ms", "0.25"))
    fitting = [c for c in res["candidates"] if c["fits"]]
    assert fitting and any(not c["fits"] for c in res["candidates"])
    assert res["chosen"]["flops"] == max(c["flops"] for c in fitting)
    assert res["chosen"]["predicted_ms"] <= 0.25 and res["budget_ms"] == 0.25
    assert set(res["chosen"]) >= {"spec", "params", "flops", "predicted_ms", "predicted_peak_mb"}
    assert all(c["params"] < 11_000 or not c["fits"] for c in res["candidates"])  # never larger than the teacher
    bigger = invoke_json(runner, *size_args(project, "--budget-ms", "0.5"))
    assert bigger["chosen"]["flops"] >= res["chosen"]["flops"]


def test_int8_search_prices_quantized_candidates(project, runner):
    res = invoke_json(runner, "size", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                      "--profile", "x86-server-avx512-vnni", "--student", "mlp", "--threads", "1")
    assert res["quantize"] == "int8" and res["threads"] == 1 and res["chosen"]["fits"]


@pytest.mark.parametrize("extra, needle", [
    (["--budget-ms", "0"], "budgets must be > 0"),
    (["--budget-ms", "-1"], "budgets must be > 0"),
    (["--budget-ms", "0.000001"], "raise --budget-ms to at least"),
])
def test_bad_budgets(project, runner, extra, needle):
    code, o, e = invoke(runner, *size_args(project, *extra))
    assert_usage_error(code, o, e, needle)


def test_family_without_knobs_cannot_be_sized(project, runner, tmp_path):
    code, o, e = invoke(runner, "size", "--teacher", f"{project}/teacher.py:build", "--data",
                        f"{project}/data.npz", "--profile", "raspberry-pi", "--student", f"{project}/teacher.py:make")
    assert_usage_error(code, o, e, "no width/depth knobs", "--student")


def test_memory_budget_above_device_ram_warns(project, runner):
    code, out, err = invoke(runner, *size_args(project, "--memory-mb", "999999", "--json"))
    assert code == 0 and "Note:" in err and "RAM" in err
    assert json.loads(out)["warnings"]


def test_distill_with_a_profile_sizes_then_initialises_from_the_teacher(project, runner, tmp_path):
    d = invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                    "--profile", "raspberry-pi", "--student", "mlp", "--quantize", "none", "--budget-ms", "0.25",
                    "--epochs", "2", "--out", tmp_path / "r")
    assert d["sizing"]["chosen"]["spec"] == f"mlp:{','.join(f'{k}={v}' for k, v in d['student']['kwargs'].items())}"
    narrower = d["student"]["kwargs"]["hidden"] <= 96 and d["student"]["kwargs"]["depth"] <= 2
    assert d["init"].startswith("teacher: layers") if narrower else d["init"] == "random"
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())["steps"]["distill"]
    assert m["sizing"]["candidates"] and m["init"] == d["init"]


def test_init_keeps_every_kth_layer_and_the_largest_units():
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                                  torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    student = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    how = init_from_teacher(student, teacher)
    assert how.startswith("teacher: layers [0, 3]")
    keep = torch.argsort(teacher[0].weight.norm(dim=1), descending=True)[:4].sort().values
    assert torch.equal(student[0].weight, teacher[0].weight[keep])
    assert torch.equal(student[2].weight, teacher[6].weight[:, keep])
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(72, 3))
    assert init_from_teacher(student, cnn) == "random"


@pytest.mark.slow
def test_bench_reports_predicted_vs_measured_on_a_host_profile(project, runner, tmp_path):
    run = tmp_path / "r"
    invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=16", "--epochs", "1", "--out", run)
    invoke_json(runner, "export", run)
    invoke_json(runner, "profiles", "calibrate", "-o", tmp_path / "host.toml", "--quick", "--threads", "1")
    b = invoke_json(runner, "bench", run, "--runs", "20", "--no-memory", "--profile", tmp_path / "host.toml")
    assert b["prediction"]["is_this_machine"] and b["settings"]["spin"] is True
    quiet = invoke_json(runner, "bench", run, "--runs", "20", "--no-memory", "--threads", "2", "--no-spin",
                        "--profile", tmp_path / "host.toml")
    assert quiet["settings"]["spin"] is False and quiet["models"]["student_fp32"]["predicted_ms"] > 0
    assert "prediction_error" in b["models"]["student_fp32"] and b["models"]["student_fp32"]["predicted_ms"] > 0
    b = invoke_json(runner, "bench", run, "--runs", "20", "--no-memory", "--profile", "raspberry-pi")
    assert not b["prediction"]["is_this_machine"] and "not this machine" in b["prediction"]["note"]
    assert "prediction_error" not in b["models"]["student_fp32"]


def test_the_teacher_is_priced_first_and_every_fitting_student_beats_it(project, runner):
    """Priced on the same profile, threads and precision; only students predicted faster and >= 2x smaller
    fit; a budget the teacher already meets is said."""
    code, out, err = invoke(runner, "size", "--teacher", f"{project}/teacher.py:build", "--data",
                            f"{project}/data.npz", "--profile", "raspberry-pi-4", "--student", "mlp", "--json")
    assert code == 0, err
    r = json.loads(out)
    t = r["teacher"]
    assert t["spec"] == "teacher" and t["params"] == 16 * 96 + 96 + 96 * 96 + 96 + 96 * 3 + 3
    for c in r["candidates"]:
        if c["fits"]:
            assert c["predicted_ms"] < t["predicted_ms"] and c["params"] * 2 <= t["params"]
        elif c["params"] * 2 > t["params"]:
            assert "2x smaller" in c["why_not"]
    assert r["chosen"]["predicted_ms"] < t["predicted_ms"]
    assert "shipping the teacher is an option" in err  # the Pi's 50 ms budget: the teacher fits already
    code, out, err = invoke(runner, "size", "--teacher", f"{project}/teacher.py:build", "--data",
                            f"{project}/data.npz", "--profile", "raspberry-pi-4", "--student", "mlp")
    lines = out.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("teacher"))
    assert lines[first + 1].startswith("mlp:hidden=16,depth=1")  # the teacher row comes first, names whole
    assert "faster than the teacher" in " ".join(out.split())
    nxt = next(ln for ln in lines if ln.startswith("Next: "))
    assert f"--student {r['chosen']['spec']}" in nxt and "--teacher" in nxt and "--data" in nxt


def test_a_family_that_cannot_beat_the_teacher_is_refused_with_both_numbers(runner, tmp_path):
    """A 3-layer MLP of 16 -> 8 -> 8 -> 3 units: no transformer student over the same features can be both
    faster and 2x smaller."""
    import numpy as np

    x = np.random.default_rng(0).normal(size=(80, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "seq.npz", x=x, y=np.arange(80) % 3)
    (tmp_path / "tiny.py").write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))\n")
    code, o, e = invoke(runner, "size", "--teacher", f"{tmp_path}/tiny.py:build", "--data", tmp_path / "seq.npz",
                        "--profile", "raspberry-pi-4", "--student", "transformer")
    assert_usage_error(code, o, e, "no transformer student is both faster than the teacher and 2x smaller",
                       "the teacher is predicted at", "ms (", "params)", "ship the teacher")


def test_token_ids_get_a_transformer_with_an_embedding_never_an_mlp(runner, tmp_path):
    import numpy as np

    from edgekd.models.students import default_family, token_ids, vocab_of, with_vocab

    ids = np.random.default_rng(0).integers(0, 50, (10, 12))
    assert token_ids(ids) and default_family((12,), token_ids=True) == "transformer"
    assert with_vocab("transformer:hidden=32", vocab_of(ids)) == f"transformer:hidden=32,vocab={ids.max() + 1}"
    (tmp_path / "t.py").write_text(
        "import torch, torch.nn as nn\n"
        "class T(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__(); self.e = nn.Embedding(50, 16); self.h = nn.Linear(16, 2)\n"
        "    def forward(self, x):\n"
        "        return self.h(self.e(x).mean(1))\n"
        "def build():\n"
        "    torch.manual_seed(0); return T()\n")
    np.savez(tmp_path / "ids.npz", x=np.random.default_rng(1).integers(0, 50, (60, 12)), y=np.arange(60) % 2)
    d = invoke_json(runner, "distill", "--teacher", f"{tmp_path}/t.py:build", "--data", tmp_path / "ids.npz",
                    "--epochs", "1", "--out", tmp_path / "r")
    assert d["student"]["family"] == "transformer" and d["student"]["kwargs"]["vocab"] == 50


@pytest.mark.slow
def test_small_images_search_every_family_and_speedup_asks_for_more(runner, tmp_path):
    """8x8 digits and their CNN teacher on the Pi: the MLP is searched beside both CNN families (the tiny convs'
    per-node overhead makes it the fast one); --speedup 2 takes only students predicted 2x faster, and a
    speed-up nothing reaches is refused with the numbers."""
    from edgekd.api.pipeline import DEMO_ARCH, demo_teacher

    weights, _ = demo_teacher(tmp_path, show_progress=False)
    args = ["size", "--teacher", weights, "--arch", DEMO_ARCH, "--data", "digits", "--profile", "raspberry-pi-4"]
    r = invoke_json(runner, *args, "--speedup", "2")
    assert r["family"] == "mobilenet+resnet+mlp"
    t = r["teacher"]["predicted_ms"]
    assert r["chosen"]["predicted_ms"] * 2 <= t
    assert all(c["predicted_ms"] * 2 <= t for c in r["candidates"] if c["fits"])
    assert any("not 2x faster than the teacher" in c["why_not"] for c in r["candidates"] if not c["fits"])
    code, o, e = invoke(runner, *args, "--speedup", "500")
    assert code == 2 and "both 500x faster than the teacher" in e, e

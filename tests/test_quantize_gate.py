"""int8 is gated on speed as well as accuracy: never a slower model written silently. Predictions on a
profile make the verdicts here the same on every machine."""
import json

import numpy as np
import onnx
import pytest
import real_models
from conftest import error_lines, invoke, invoke_json


@pytest.fixture(scope="module")
def mlp_run(project, tmp_path_factory):
    from click.testing import CliRunner

    run = tmp_path_factory.mktemp("gate") / "run"
    for args in (["distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                  "--student", "mlp:hidden=8", "--epochs", "2", "--out", run], ["export", run]):
        invoke_json(CliRunner(), *args)
    return run


def test_int8_slower_than_fp32_is_a_result_recorded_for_bench(mlp_run, runner):
    """A tiny MLP's int8 model is predicted slower on the Pi 4 (quantize/dequantize cost more than its GEMMs):
    quantize answers "ship fp32" with exit 0 (the README's chain goes on to bench), writes nothing and records
    why; --require-faster makes that exit 1 for CI."""
    q = invoke_json(runner, "quantize", mlp_run, "--profile", "raspberry-pi-4", "--mode", "static")
    assert q["written"] is False and q["output"] is None
    v = q["details"]["verdict"]
    assert "int8 is slower than fp32 on raspberry-pi-4 (predicted" in v and "x slower" in v and " ms" in v, v
    assert "the prediction's likely range: " in v  # the profile's own error band, from its datasheet here
    assert not (mlp_run / "student.int8.onnx").exists()
    step = json.loads((mlp_run / "manifest.json").read_text())["steps"]["quantize"]
    assert step["written"] is False and step["speed"]["call"] == "slower"
    code, out, err = invoke(runner, "quantize", mlp_run, "--profile", "raspberry-pi-4", "--mode", "static")
    assert code == 0 and "nothing written: ship fp32" in out, (code, out, err)
    b = invoke_json(runner, "bench", mlp_run, "--runs", "3", "--no-memory")
    assert "student_int8" not in b["models"] and b["verdict"][0].startswith("no int8 model: int8 is slower")

    code, out, err = invoke(runner, "quantize", mlp_run, "--profile", "raspberry-pi-4", "--mode", "static",
                            "--require-faster")
    lines = error_lines(err)
    assert code == 1 and len(lines) == 1 and out == "", err
    assert "int8 is slower than fp32 on raspberry-pi-4 (predicted" in lines[0] and "--allow-slower" in lines[0]
    assert not (mlp_run / "student.int8.onnx").exists()

    q = invoke_json(runner, "quantize", mlp_run, "--profile", "raspberry-pi-4", "--mode", "static",
                    "--allow-slower")
    sp = q["details"]["speed"]
    assert sp["speedup"] < 1 and "x slower than fp32 on raspberry-pi-4" in q["details"]["verdict"]
    assert (mlp_run / "student.int8.onnx").is_file()


def test_a_difference_within_the_noise_is_no_measurable_difference():
    """The speed gate calls a 3% difference "no measurable difference", whatever the noise; a 30% one with
    rounds that agree is "faster"; rounds that disagree (a machine whose speed moved) are not called."""
    from edgekd.deploy.measure import Speedup

    rng = np.random.default_rng(0)
    fp32 = rng.normal(1.0, 0.01, 7)
    assert Speedup.rounds(fp32, fp32 / 1.03).call == "same"
    assert "no measurable difference" in Speedup.rounds(fp32, fp32 / 1.03).words()
    assert Speedup.rounds(fp32, fp32 / 1.3).call == "faster"
    assert Speedup.rounds(fp32, fp32 * 1.41).words() == "1.41x slower"
    moving = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert Speedup.rounds(moving, moving * np.array([0.7, 0.75, 1.3, 0.72, 1.25, 1.3, 0.7])).call == "same"
    samples = rng.lognormal(0, 0.3, 400)
    assert Speedup.measured(samples, rng.permutation(samples) / 1.03).call == "same"
    assert Speedup.measured(samples, rng.permutation(samples) / 1.5).call == "faster"
    assert Speedup.predicted(1.0, 0.98).call == "same" and Speedup.predicted(1.0, 0.5).call == "faster"


def test_the_fastest_passing_int8_model_is_kept(runner, tmp_path):
    """A conv segmenter on a phone with i8mm: int8 predicted faster; both activation types are tried and the
    faster kept, with the preset's reason said."""
    path, data = real_models.segmenter(tmp_path)
    q = invoke_json(runner, "quantize", path, "--data", data, "--profile", "iphone-15", "--shape",
                    "pixels=1x3x48x48", "--output", tmp_path / "seg.int8.onnx")
    d = q["details"]
    assert d["mode"] == "static" and d["mode_source"] == "a conv graph"
    assert d["speed"]["speedup"] > 1 and "faster than fp32 on iphone-15" in d["verdict"]
    timed = [a for a in d["attempts"] if "latency_ms" in a]
    assert len(timed) == 2 and d["speed"]["int8_ms"] == min(a["latency_ms"] for a in timed)
    assert d["preset_source"] == "the iphone-15 profile"


def test_mode_follows_the_graph_and_nothing_is_left_in_the_working_directory(mlp_run, runner, tmp_path,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    q = invoke_json(runner, "quantize", mlp_run, "--allow-slower", "--output", tmp_path / "out" / "q.onnx")
    assert q["details"]["mode"] == "dynamic" and q["details"]["mode_source"] == "a MatMul/attention graph"
    assert {n.op_type for n in onnx.load(tmp_path / "out" / "q.onnx").graph.node} & {"MatMulInteger",
                                                                                      "DynamicQuantizeLinear"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp files beside the user's work
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["q.onnx"]


def test_output_equal_to_the_input_is_refused(mlp_run, runner):
    from test_bad_inputs import assert_usage_error

    code, o, e = invoke(runner, "quantize", mlp_run, "--output", mlp_run / "student.onnx")
    assert_usage_error(code, o, e, "is the model being quantized")


def test_presets_follow_what_mlas_runs():
    from edgekd.deploy.quantize import preset_for

    assert preset_for({"avx2", "avx512_vnni"}, "x86_64")[0] == "u8s8"  # MLAS x86 is U8S8: s8s8 pays a conversion
    assert preset_for({"avx2", "fma"}, "x86_64")[0] == "u8s8-reduce-range"
    assert preset_for({"asimd", "asimddp", "i8mm"}, "arm64")[0] == "s8s8"
    assert preset_for({"asimd", "asimddp"}, "arm64")[0] == "u8s8"


def test_export_ships_metadata_the_ort_format_and_mobile_usability(mlp_run, runner):
    """An app reads how to feed the model from its metadata; a phone loads student.ort."""
    import onnxruntime as ort

    e = invoke_json(runner, "export", mlp_run, "--ort-format", "--opset", "17")
    meta = ort.InferenceSession(str(mlp_run / "student.onnx"),
                                providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert meta["edgekd.model"] == "student" and meta["edgekd.classes"] == "3"
    assert json.loads(meta["edgekd.io"])["inputs"][0]["name"] == "input"
    assert float(meta["edgekd.student_test_accuracy"]) > 0
    assert e["models"]["student"]["opset"] == 17
    sess = ort.InferenceSession(str(mlp_run / "student.ort"), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": np.zeros((2, 16), np.float32)})[0].shape == (2, 3)
    assert (mlp_run / "student.required_operators.config").is_file()
    nnapi = e["mobile"]["usability"]["nnapi"]
    assert nnapi["nodes"] > 0 and nnapi["supported_nodes_with_fixed_shapes"] == nnapi["nodes"]  # Gemm/Relu


def test_mixed_precision_keeps_the_nodes_int8_hurts_most_in_fp32(runner, tmp_path):
    """One huge channel sets a per-tensor scale that rounds every other one to zero: every preset and fallback
    fails the gate; ranking the nodes by their quantized inputs' error and keeping the worst in fp32 passes."""
    import torch

    class Outlier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = torch.nn.Linear(16, 32), torch.nn.Linear(32, 32), torch.nn.Linear(32, 8)
            with torch.no_grad():
                self.b.weight[0] *= 2000.0
                self.b.bias[0] = 5000.0
                self.c.weight[:, 0] = 0.0  # the head ignores the huge channel

        def forward(self, x):
            return self.c(torch.relu(self.b(torch.relu(self.a(x)))))

    torch.manual_seed(0)
    m = Outlier().eval()
    x = np.random.default_rng(0).normal(size=(600, 16)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=m(torch.from_numpy(x)).argmax(1).numpy())
    torch.onnx.export(m, (torch.zeros(2, 16),), str(tmp_path / "m.onnx"), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "b"}})
    q = invoke_json(runner, "quantize", tmp_path / "m.onnx", "--data", tmp_path / "d.npz", "--mode", "static",
                    "--max-drop", "0.15", "--allow-slower")
    d = q["details"]
    assert all(a["drop"] > 0.15 for a in d["attempts"] if "fp32[" not in a["name"] and "drop" in a)
    assert d["fp32_nodes"] and "/a/Gemm" not in d["fp32_nodes"] and d["accuracy_drop"] <= 0.15
    assert "kept in fp32" in d["verdict"]


@pytest.mark.parametrize("calibration", ["entropy", "percentile"])
def test_calibration_methods_keep_stdout_clean(runner, tmp_path, calibration):
    path, data = real_models.segmenter(tmp_path)
    code, out, err = invoke(runner, "quantize", path, "--data", data, "--calibration", calibration, "--allow-slower",
                            "--output", tmp_path / "q.onnx", "--json")
    assert code == 0, err
    assert json.loads(out)["details"]["calibration"] == calibration  # the calibrators' prints stayed off stdout


def test_int4_weights_for_matmul_models_and_a_clear_no_for_the_others(runner, tmp_path):
    import onnx as _onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])], [w])
    _onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "mm.onnx")
    np.savez(tmp_path / "mm.npz", x=np.random.default_rng(1).normal(size=(80, 64)).astype(np.float32))
    q = invoke_json(runner, "quantize", tmp_path / "mm.onnx", "--data", tmp_path / "mm.npz", "--weights", "int4",
                    "--allow-slower", "--max-drop", "0.3", "--output", tmp_path / "mm.int4.onnx")
    assert q["details"]["weights"] == "int4" and q["details"]["agreement_with_fp32"] > 0.7
    assert "MatMulNBits" in {n.op_type for n in _onnx.load(tmp_path / "mm.int4.onnx").graph.node}
    fixed, fdata = real_models.fixed_batch(tmp_path)
    from test_bad_inputs import assert_usage_error

    code, o, e = invoke(runner, "quantize", fixed, "--data", fdata, "--weights", "int4")
    assert_usage_error(code, o, e, "no MatMul with constant weights", "--weights int8")


def test_fp16_keeps_fp32_inputs_and_outputs(runner, tmp_path):
    path, data = real_models.segmenter(tmp_path)
    q = invoke_json(runner, "quantize", path, "--data", data, "--weights", "fp16", "--allow-slower",
                    "--output", tmp_path / "seg.fp16.onnx")
    m = onnx.load(tmp_path / "seg.fp16.onnx")
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # the app feeds float32
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
    assert q["details"]["weights"] == "fp16" and q["details"]["agreement_with_fp32"] > 0.999


def test_the_gate_decides_on_at_least_200_samples_where_the_data_has_them(mlp_run, runner, tmp_path):
    """72 test samples: topped up with training samples calibration did not use."""
    q = invoke_json(runner, "quantize", mlp_run, "--calib-samples", "64", "--allow-slower",
                    "--output", tmp_path / "q.onnx")
    d = q["details"]
    assert d["gate_samples"] == {"test": 72, "extra_train": 128} and d["eval_samples"] == 200
    q = invoke_json(runner, "quantize", mlp_run, "--allow-slower", "--output", tmp_path / "q.onnx")
    assert q["details"]["gate_samples"] == {"test": 72, "extra_train": 32}  # 288 training samples, 256 calibrate


def test_gate_metric_and_weight_scale_knobs(mlp_run, project, runner, tmp_path):
    """--metric picks what the gate measures; --per-tensor / --full-range override the preset, said in its name."""
    q = invoke_json(runner, "quantize", mlp_run, "--allow-slower", "--metric", "cosine", "--per-tensor",
                    "--full-range", "--output", tmp_path / "c.onnx")
    d = q["details"]
    assert d["metric"] == "cosine" and d["agreement_metric"] == "cosine"
    assert d["preset"].endswith("+per-tensor") or "+per-tensor" in d["preset"], d["preset"]
    assert d["accuracy_drop"] == pytest.approx(1 - d["agreement_with_fp32"])
    q = invoke_json(runner, "quantize", mlp_run, "--allow-slower", "--metric", "top1", "--output", tmp_path / "t.onnx")
    assert q["details"]["metric"] == "top1_agreement"
    np.savez(tmp_path / "unlabeled.npz", x=np.load(project / "data.npz")["x"])
    code, out, err = invoke(runner, "quantize", mlp_run, "--metric", "accuracy", "--data", tmp_path / "unlabeled.npz",
                            "--output", tmp_path / "a.onnx")
    assert code == 2 and "--metric accuracy needs labels" in err and "Traceback" not in err
    assert not (tmp_path / "a.onnx").exists()


def test_export_writes_the_offline_optimized_graph(mlp_run, runner):
    e = invoke_json(runner, "export", mlp_run, "--optimize", "extended")
    opt = e["models"]["student"]["ort_optimized"]
    assert opt["path"] == "student.ort-extended.onnx" and opt["parity"]["passed"]
    assert (mlp_run / "student.ort-extended.onnx").is_file()


def test_a_yolo_head_keeps_its_concat_in_fp32_up_front(runner, tmp_path):
    """Box coordinates (0-640) and sigmoid scores (mostly < 0.05) in one Concat: one int8 scale rounds every
    score to zero (a 100% drop). The gate sees the inputs' ranges differ > 100x, keeps that Concat in fp32 from
    the first attempt, says so, and the int8 model keeps the scores."""
    path, data = real_models.yolo(tmp_path)
    code, out, err = invoke(runner, "quantize", path, "--data", data, "--allow-slower", "--json")
    assert code == 0, err
    d = json.loads(out)["details"]
    assert any("kept in fp32 up front" in n and "Concat" in n for n in d["notes"]), d["notes"]
    assert d["agreement_with_fp32"] > 0.99 and d["accuracy_drop"] <= 0.01
    assert all(any("Concat" in n for n in a["fp32_nodes"]) for a in d["attempts"] if "drop" in a)


def test_a_refusal_is_the_trade_off_table_and_one_more_command_takes_it(runner, tmp_path):
    """When nothing passes (here: no drop allowed, and the search cut short by --time-limit), quantize answers
    "ship fp32" (exit 0) with every candidate's drop, the closest ones' measured speed-up and the --max-drop
    that takes each; that --max-drop then writes it. --require-faster makes the refusal exit 1."""
    path, data = real_models.segmenter(tmp_path)
    args = ["quantize", path, "--data", data, "--shape", "pixels=1x3x48x48", "--output", tmp_path / "s.int8.onnx"]
    q = invoke_json(runner, *args, "--max-drop", "0", "--time-limit", "0.01")
    d = q["details"]
    assert q["written"] is False and d["chosen"] is None and "ship the fp32 model" in d["verdict"]
    assert any("--time-limit" in n for n in d["notes"])
    scored = [a for a in d["attempts"] if "drop" in a]
    assert scored and all(a["max_drop_to_pass"] >= a["drop"] for a in scored)
    assert any("speedup" in a for a in scored) and "--max-drop" in d["hint"]
    take = min(scored, key=lambda a: a["drop"])["max_drop_to_pass"]
    again = invoke_json(runner, *args, "--max-drop", str(take), "--allow-slower")
    assert again["written"] and again["details"]["accuracy_drop"] <= take
    code, out, err = invoke(runner, *args, "--max-drop", "0", "--time-limit", "0.01", "--require-faster")
    assert code == 1 and "no int8 model stayed within" in err


def test_mixed_precision_bisects_the_ranking():
    """The fewest nodes to keep in fp32, found in about 2 log2(N) probes, none repeated."""
    from edgekd.deploy.quantize import smallest_passing

    for need in (1, 2, 7, 19):
        probes = []

        def passes(k, need=need, probes=probes):
            probes.append(k)
            return k >= need
        assert smallest_passing(20, passes, lambda: False) == need
        assert len(probes) == len(set(probes)) <= 10, probes
    assert smallest_passing(20, lambda k: False, lambda: False) is None


def test_a_probability_map_reports_and_can_gate_on_the_thresholded_mask(runner, tmp_path):
    path, data = real_models.probability_map(tmp_path)
    q = invoke_json(runner, "quantize", path, "--data", data, "--allow-slower", "--max-drop", "0.5",
                    "--output", tmp_path / "a.onnx")
    d = q["details"]
    assert d["agreement_metric"] == "cosine" and 0 <= d["mask_iou_with_fp32"] <= 1
    assert "the mask above 0.5: IoU" in d["verdict"]
    q = invoke_json(runner, "quantize", path, "--data", data, "--allow-slower", "--metric", "mask_iou",
                    "--max-drop", "0.5", "--output", tmp_path / "b.onnx")
    assert q["details"]["agreement_metric"] == "mask_iou"
    assert q["details"]["accuracy_drop"] == pytest.approx(1 - q["details"]["agreement_with_fp32"])
    seg, seg_data = real_models.segmenter(tmp_path)  # logits, not probabilities
    code, o, e = invoke(runner, "quantize", seg, "--data", seg_data, "--shape", "pixels=1x3x48x48", "--metric",
                        "mask_iou")
    from test_bad_inputs import assert_usage_error

    assert_usage_error(code, o, e, "--metric mask_iou needs a probability map")


def test_a_run_quantized_to_fp16_is_named_and_benched_as_fp16_beside_its_int8(project, runner, tmp_path):
    """`quantize RUN --weights fp16` writes student.fp16.onnx (not student.int8.onnx); an int8 model already
    there stays, still verified; bench shows each as its own row."""
    run = tmp_path / "run"
    for args in (["distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                  "--student", "mlp:hidden=8", "--epochs", "1", "--out", run], ["export", run]):
        invoke_json(runner, *args)
    invoke_json(runner, "quantize", run, "--allow-slower")
    int8 = (run / "student.int8.onnx").read_bytes()
    q = invoke_json(runner, "quantize", run, "--weights", "fp16", "--allow-slower")
    assert q["output"] == str(run / "student.fp16.onnx") and (run / "student.fp16.onnx").is_file()
    assert (run / "student.int8.onnx").read_bytes() == int8
    step = json.loads((run / "manifest.json").read_text())["steps"]["quantize"]
    assert step["weights"] == "fp16" and set(step["sha256"]) == {"student.int8.onnx", "student.fp16.onnx"}
    b = invoke_json(runner, "bench", run, "--runs", "3", "--no-memory")
    assert {"student_fp32", "student_int8", "student_fp16"} <= set(b["models"])
    (run / "student.fp16.onnx").write_bytes((run / "student.fp16.onnx").read_bytes() + b"x")
    code, out, err = invoke(runner, "bench", run, "--runs", "3", "--no-memory")
    assert code == 2 and "student.fp16.onnx changed after `edgekd quantize`" in err, err


@pytest.mark.slow
def test_fp16_of_the_demo_cnn_is_a_valid_graph_that_bench_and_predict_take(runner, tmp_path):
    """onnxruntime's fp16 converter appends its input casts after the nodes that read them: on the demo's CNN
    student the result was 'nodes not topologically sorted' (and the teacher's fp16 file was refused by bench)."""
    run = tmp_path / "demo"
    invoke_json(runner, "demo", "--out", run, "--epochs", "1")
    q = invoke_json(runner, "quantize", run, "--weights", "fp16", "--allow-slower")
    onnx.checker.check_model(onnx.load(q["output"]))
    invoke_json(runner, "quantize", run / "teacher.onnx", "--data", "digits", "--weights", "fp16", "--allow-slower",
                "--output", tmp_path / "teacher.fp16.onnx")
    b = invoke_json(runner, "bench", tmp_path / "teacher.fp16.onnx", "--runs", "3", "--no-memory")
    assert b["records"][0]["latency_ms"]["p50"] > 0
    p = invoke_json(runner, "predict", tmp_path / "teacher.fp16.onnx", "--profile", "raspberry-pi-4")
    assert p["latency_ms"] > 0


def test_explain_says_why_int8_wins_or_loses_op_group_by_op_group(runner, tmp_path):
    """--explain profiles fp32 and the int8 model with onnxruntime's profiler on this machine: a depthwise
    net's convs and depthwise convs in rows of their own (their fp32 and int8 kernels side by side), the
    Quantize/Dequantize int8 added, and one line whose verdict follows the kernel times it quotes."""
    path, data = real_models.inverted(tmp_path)
    out = tmp_path / "inv.int8.onnx"
    q = invoke_json(runner, "quantize", path, "--data", data, "--explain", "--allow-slower", "--output", out)
    e = q["details"]["explain"]
    groups = {g["name"]: g for g in e["groups"]}
    assert groups["conv"]["fp32_nodes"] >= 5 and groups["conv"]["int8_kernels"] >= 5
    assert groups["depthwise conv"]["fp32_nodes"] == 2 and groups["depthwise conv"]["int8_kernels"] == 2
    assert groups["quantize/dequantize"]["int8_nodes"] >= 2 and groups["quantize/dequantize"]["fp32_nodes"] == 0
    assert e["fp32_ms"] > 0 and e["int8_ms"] > 0 and e["runs"] >= 20 and e["fp32_anyway"] == []
    assert abs(sum(g["int8_ms"] for g in e["groups"]) - e["int8_ms"]) < 1e-9
    assert e["providers"] == {"CPUExecutionProvider": sum(g["int8_nodes"] for g in e["groups"])}
    assert e["reason"].startswith("int8 wins here" if e["int8_ms"] < e["fp32_ms"] else "int8 loses here")
    assert "Quantize/Dequantize (" in e["reason"] and e["costliest"][0]["ms"] >= e["costliest"][-1]["ms"]

    code, text, err = invoke(runner, "quantize", path, "--data", data, "--explain", "--allow-slower", "--output",
                             tmp_path / "again.onnx")
    assert code == 0, err
    assert "int8 op by op, on this machine" in text and "depthwise conv" in text and "costliest int8 nodes" in text
    assert "int8 wins here" in text or "int8 loses here" in text


def test_the_explanations_line_weighs_what_int8_saves_against_what_it_adds():
    from edgekd.deploy.explain import Group, reason

    conv, qdq = Group("conv", 1.0, 0.4, 3, 3, 3), Group("quantize/dequantize", 0.0, 0.1, 0, 4, 0)
    assert reason([conv, qdq], 1.0, 0.5) == ("int8 wins here (0.5 vs 1 ms of kernel time): the int8 convs save 0.6 "
                                             "of their 1 ms; Quantize/Dequantize (4 nodes) costs 0.1 ms")
    slow = Group("depthwise conv", 0.2, 0.3, 2, 2, 2)
    line = reason([slow, Group("quantize/dequantize", 0.0, 0.3, 0, 14, 0)], 0.2, 0.6)
    assert line.startswith("int8 loses here (0.6 vs 0.2 ms") and "depthwise convs are slower than in fp32 by 0.1 ms" \
        in line and "(14 nodes) costs 0.3 ms" in line
    fp32 = reason([Group("matmul", 0.5, 0.5, 1, 1, 0), qdq], 0.5, 0.6, fp32_anyway=1)
    assert "no conv or MatMul runs an int8 kernel" in fp32 and "1 compute node(s) ran in fp32 anyway" in fp32

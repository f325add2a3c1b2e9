"""The latency predictor: FLOP/byte counts on real exported graphs, op classes, and sane predictions."""
import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from conftest import invoke
from onnx import TensorProto, helper

from edgekd.errors import UsageError
from edgekd.latency.graph import analyze, parse_shapes
from edgekd.latency.predictor import predict_latency


def export(model, shape, path, dynamic=True):
    torch.onnx.export(model.eval(), (torch.randn(2, *shape),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], dynamic_axes={"input": {0: "batch"}} if dynamic else None)
    return path


def test_conv_and_gemm_flops_match_hand_counts(tmp_path):
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 10))
    cost = analyze(export(m, (3, 16, 16), tmp_path / "m.onnx"), batch=4)
    conv = next(n for n in cost.nodes if n.op_class == "conv")
    gemm = next(n for n in cost.nodes if n.op_class == "gemm")
    assert conv.flops == 2 * 4 * 8 * 16 * 16 * 3 * 9
    assert gemm.flops == 2 * 4 * 2048 * 10
    assert conv.op_type == "FusedConv"  # Conv+Relu fused as onnxruntime runs it
    assert cost.input_shapes == {"input": [4, 3, 16, 16]}


def test_depthwise_is_its_own_class_and_int8_is_detected(tmp_path):
    from edgekd.deploy.quantize import Attempt, quantize_file

    m = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(), nn.Conv2d(16, 32, 1))
    src = export(m, (16, 16, 16), tmp_path / "dw.onnx")
    classes = {n.op_class for n in analyze(src).nodes}
    assert {"dwconv", "conv"} <= classes
    q = tmp_path / "dw.int8.onnx"
    quantize_file(src, q, Attempt("s8s8", "s8s8"), "static", np.random.rand(8, 16, 16, 16).astype(np.float32))
    int8_convs = [n for n in analyze(q).nodes if n.op_class in ("conv", "dwconv")]
    assert int8_convs and all(n.dtype == "int8" for n in int8_convs)


def test_predictions_order_models_devices_and_threads(tmp_path):
    small = export(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), (64,), tmp_path / "s.onnx")
    big = export(nn.Sequential(nn.Linear(64, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)),
                 (64,), tmp_path / "b.onnx")
    pi4 = predict_latency(str(big), "raspberry-pi-4")
    assert predict_latency(str(small), "raspberry-pi-4").latency_ms < pi4.latency_ms
    assert predict_latency(str(big), "x86-server-avx512-vnni").latency_ms < pi4.latency_ms
    assert predict_latency(str(big), "raspberry-pi-4", batch=64, threads=4).latency_ms < \
        predict_latency(str(big), "raspberry-pi-4", batch=64, threads=1).latency_ms
    assert pi4.low_ms < pi4.latency_ms < pi4.high_ms and not pi4.calibrated
    assert abs(sum(pi4.by_class_ms.values()) - pi4.latency_ms) < pi4.latency_ms * 0.5  # run overhead is the rest
    assert pi4.top_nodes[0]["share"] >= pi4.top_nodes[-1]["share"]


def _hardmax_model(path, seq_dim="seq"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", seq_dim, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", seq_dim, 16])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Hardmax", ["r"], ["y"])],
                              "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_symbolic_dims_need_shape_and_unknown_ops_warn(tmp_path, runner):
    path = _hardmax_model(tmp_path / "h.onnx")
    with pytest.raises(UsageError) as e:
        analyze(path)
    assert "'seq'" in e.value.message and "--shape x=" in e.value.hint
    code, out, err = invoke(runner, "predict", path, "--profile", "raspberry-pi")
    assert code == 2 and "--shape" in err
    code, out, err = invoke(runner, "predict", path, "--profile", "raspberry-pi", "--shape", "x=1x32x16", "--json")
    assert code == 0, err
    assert "Hardmax" in err and "Warning" in err  # priced as a generic node, listed, never a crash
    import json
    assert json.loads(out)["unknown_ops"] == ["Hardmax"]


@pytest.mark.parametrize("spec", ["x", "x=", "x=1xAx3", "=1x2", "x=0x3"])
def test_bad_shape_options(spec):
    with pytest.raises(UsageError):
        parse_shapes([spec])


def test_shape_for_an_unknown_input(tmp_path):
    with pytest.raises(UsageError) as e:
        analyze(_hardmax_model(tmp_path / "h.onnx"), shapes={"nope": [1, 2, 16]})
    assert "'nope'" in e.value.message or "seq" in e.value.message


def _batch_scaled_model(path):
    """y = x * batch, the batch read at run time (Shape -> Gather -> Cast): ORT cannot fold it away."""
    from onnx import numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 4])
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT), helper.make_node("Mul", ["x", "bf"], ["y"])]
    zero = numpy_helper.from_array(np.array(0, np.int64), "zero")
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[zero])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_analysis_prices_the_graph_onnxruntime_runs(tmp_path):
    """Dynamic-shape subgraphs still run (ORT cannot fold them), so they are counted; level ALL reads back
    the layout-transformed graph this CPU runs."""
    import onnxruntime as ort

    ops = [n.op_type for n in analyze(_batch_scaled_model(tmp_path / "d.onnx"), batch=2).nodes]
    assert ops == ["Shape", "Gather", "Cast", "Mul"]
    m = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.Flatten(),
                      nn.Linear(16 * 8 * 8, 4))
    path = export(m, (8, 8, 8), tmp_path / "m.onnx", dynamic=False)
    cost = analyze(path, level="all")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    assert len(cost.nodes) == len(onnx.load(str(tmp_path / "opt.onnx")).graph.node)
    assert cost.level == "all" and all(n.kernel for n in cost.nodes)
    portable = analyze(path, level="extended")  # (level ALL may pad channels to the CPU's vector width)
    assert sum(n.flops for n in portable.nodes if n.op_class == "conv") == 2 * 2 * 16 * 64 * (8 + 16) * 9  # batch 2


def test_a_shape_the_model_rejects_is_a_one_line_error(tmp_path):
    with pytest.raises(UsageError) as e:
        analyze(_hardmax_model(tmp_path / "h.onnx", seq_dim=32), shapes={"x": [1, 32, 15]})
    assert "onnxruntime could not run" in e.value.message and "x=1x32x15" in e.value.message
    assert "\n" not in e.value.message


def test_predict_int8_prices_the_model_quantize_would_write(tmp_path, runner):
    """`predict --int8`: the fp32 graph and a temporary int8 copy made as quantize would for the profile (its
    mode, the profile's preset) are both priced; the speed-up is their ratio, with the profile's band. An int8
    model is refused: there is nothing left to predict the quantization of."""
    import json

    from edgekd.deploy.quantize import Attempt, quantize_file

    m = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    src = export(m, (3, 32, 32), tmp_path / "cnn.onnx")
    code, out, err = invoke(runner, "predict", src, "--profile", "raspberry-pi-4", "--int8", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["mode"] == "static" and r["preset"] and r["profile"] == "raspberry-pi-4"
    assert r["speedup"] == pytest.approx(r["fp32"]["latency_ms"] / r["int8"]["latency_ms"])
    assert r["low"] < r["speedup"] < r["high"]
    assert any(n["dtype"] == "int8" for n in r["int8"]["top_nodes"]) and r["int8"]["latency_ms"] != \
        r["fp32"]["latency_ms"]
    assert not any(n["dtype"] == "int8" for n in r["fp32"]["top_nodes"])
    assert r["verdict"].startswith("int8 on raspberry-pi-4, predicted: ")
    code, out, err = invoke(runner, "predict", src, "--profile", "raspberry-pi-4", "--int8")
    assert code == 0 and "speed-up likely" in out and "int8" in out
    q = tmp_path / "cnn.int8.onnx"
    quantize_file(src, q, Attempt("u8s8", "u8s8"), "static", np.random.rand(8, 3, 32, 32).astype(np.float32))
    code, out, err = invoke(runner, "predict", q, "--profile", "raspberry-pi-4", "--int8")
    assert code == 2 and "already quantized" in err and err.count("\n") == 1

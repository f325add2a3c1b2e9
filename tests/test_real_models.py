"""Models shaped like the ones users bring (tests/real_models.py) through export, predict, bench and
quantize: several inputs with a state and an int64 scalar, a fixed batch of 1, symbolic H x W, opsets
11-13, a dense output, a detector's concatenated output, int64 token ids with a mask."""
import json

import numpy as np
import onnx
import pytest
import real_models
from conftest import error_lines, invoke, invoke_json
from test_bad_inputs import assert_usage_error

# what each model needs on the command line besides its data, and what its scored output is
SHAPE = {"segmenter": ["--shape", "pixels=1x3x64x64"], "text": ["--shape", "input_ids=1x16"]}
KIND = {"audio": "other", "fixed_batch": "logits", "segmenter": "dense", "detector": "boxes", "text": "logits",
        "vad": "other"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return {name: build(root) for name, build in real_models.BUILDERS.items()}


@pytest.mark.parametrize("name", list(real_models.BUILDERS))
def test_every_step_takes_the_model(zoo, runner, tmp_path, name):
    path, data = zoo[name]
    opset = next(o.version for o in onnx.load(path).opset_import if o.domain in ("", "ai.onnx"))
    e = invoke_json(runner, "export", path, *SHAPE.get(name, []))["models"]["model"]
    assert e["opset"] == opset and [t["name"] for t in e["io"]["inputs"]] == \
        [i.name for i in onnx.load(path).graph.input]

    p = invoke_json(runner, "predict", path, "--profile", "raspberry-pi-4", *SHAPE.get(name, []))
    assert p["latency_ms"] > 0

    b = invoke_json(runner, "bench", path, "--data", data, "--runs", "10")
    m = b["models"]["model"]
    with np.load(data) as f:  # timed and probed on the data's own shapes, every input fed
        for t in e["io"]["inputs"]:
            if t["name"] in f.files and f[t["name"]].ndim == len(t["shape"]):
                assert m["inputs"][t["name"]][1:] == list(f[t["name"]].shape[1:])
    assert set(m["inputs"]) == {t["name"] for t in e["io"]["inputs"]}
    assert m["output_kind"] == KIND[name] and m["memory"]["peak_rss_mb"] > 0

    out = tmp_path / f"{name}.int8.onnx"
    q = invoke_json(runner, "quantize", path, "--data", data, "--max-drop", "0.2", "--output", out, "--mode", "static",
                    "--allow-slower")
    assert out.is_file() and q["details"]["output_kind"] == KIND[name]
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(out).graph.node}


def test_three_inputs_with_state_and_scalar(zoo, runner):
    """The npz's state has no sample axis (the same initial state for every sample) and sr is a scalar."""
    path, data = zoo["audio"]
    code, out, err = invoke(runner, "bench", path, "--runs", "5", "--no-memory", "--json")
    assert code == 0, err
    assert "generated values" in err and "audio" in err and "sr" in err  # no data: says what it made up
    m = json.loads(out)["models"]["model"]
    assert m["inputs"] == {"audio": [1, 256], "state": [1, 2, 32], "sr": []}


def test_fixed_batch_is_fed_one_sample_at_a_time(zoo, runner):
    path, data = zoo["fixed_batch"]
    code, out, err = invoke(runner, "bench", path, "--data", data, "--runs", "5", "--no-memory", "--json")
    assert code == 0 and "fixed at 1" in err
    assert json.loads(out)["models"]["model"]["accuracy"] is not None  # all 8 test samples scored
    code, o, e = invoke(runner, "bench", path, "--data", data, "--batch", "8")
    assert_usage_error(code, o, e, "fixed at 1", "--batch 8")


def test_symbolic_height_and_width_are_never_a_silent_1x1(zoo, runner):
    path, _ = zoo["segmenter"]
    code, o, e = invoke(runner, "bench", path, "--no-memory")
    assert_usage_error(code, o, e, "height", "--shape pixels=")
    b = invoke_json(runner, "bench", path, "--shape", "pixels=1x3x96x80", "--runs", "5")
    m = b["models"]["model"]
    assert m["inputs"] == {"pixels": [1, 3, 96, 80]} and m["memory"]["peak_rss_mb"] > 0


def test_token_ids_stay_int64(zoo, runner, tmp_path):
    path, data = zoo["text"]
    b = invoke_json(runner, "bench", path, "--data", data, "--runs", "5", "--no-memory")
    assert b["models"]["model"]["accuracy"] is not None
    with np.load(data) as f:
        np.savez(tmp_path / "float_ids.npz", input_ids=f["input_ids"].astype(np.float32),
                 attention_mask=f["attention_mask"], y=f["y"])
    code, o, e = invoke(runner, "bench", path, "--data", tmp_path / "float_ids.npz")
    assert_usage_error(code, o, e, "input_ids expects int64", "float32")


def test_detector_gate_compares_boxes_and_scores_apart():
    """Zeroed class scores hide behind box coordinates in one cosine; compared apart they do not."""
    from edgekd.deploy.measure import fidelity, mean_cosine

    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 640, (8, 4, 100))
    scores = rng.uniform(0, 1, (8, 80, 100))
    ref = np.concatenate([boxes, scores], 1)
    zeroed = np.concatenate([boxes, np.zeros_like(scores)], 1)
    assert mean_cosine(ref, zeroed) > 0.98
    assert fidelity(ref, zeroed, "boxes")[1] < 0.5
    assert fidelity(ref, ref, "boxes")[1] == pytest.approx(1.0)


@pytest.mark.parametrize("arrays, needle", [
    ({"input_ids": np.zeros((8, 16), np.int64)}, "no array for input 'attention_mask'"),
    ({"input_ids": np.zeros((8, 16), np.int64), "attention_mask": np.ones((8, 16), np.int64),
      "token_type_ids": np.zeros((8, 16), np.int64)}, "not an input of the model"),
    ({"input_ids": np.zeros((8, 16, 2), np.int64), "attention_mask": np.ones((8, 16), np.int64)},
     "input input_ids expects (batch, seq)"),
    ({"input_ids": np.zeros((8, 16), np.int64), "attention_mask": np.ones((6, 16), np.int64)},
     "different numbers of samples"),
])
def test_bad_data_for_a_multi_input_model(zoo, runner, tmp_path, arrays, needle):
    path, _ = zoo["text"]
    np.savez(tmp_path / "bad.npz", **arrays)
    code, o, e = invoke(runner, "quantize", path, "--data", tmp_path / "bad.npz", "--output", tmp_path / "q.onnx")
    assert_usage_error(code, o, e, needle)
    assert not (tmp_path / "q.onnx").exists()


def test_bad_shapes_and_outputs(zoo, runner, tmp_path):
    path, data = zoo["segmenter"]
    code, o, e = invoke(runner, "bench", path, "--shape", "image=1x3x64x64")
    assert_usage_error(code, o, e, "'image'", "inputs: pixels")
    code, o, e = invoke(runner, "predict", path, "--profile", "raspberry-pi-4", "--shape", "nope=1x3x8x8")
    assert_usage_error(code, o, e, "'nope'")
    code, o, e = invoke(runner, "export", path, "--shape", "pixels=1x4x64x64")
    assert_usage_error(code, o, e, "does not fit input pixels")
    (tmp_path / "dir.onnx").mkdir()
    code, o, e = invoke(runner, "quantize", path, "--data", data, "--output", tmp_path / "dir.onnx")
    assert_usage_error(code, o, e, "is a directory")


@pytest.mark.parametrize("name, shape, kind", [
    ("logits", ("batch", 10), "logits"), ("output0", ("batch", 84, 8400), "boxes"),
    ("last_hidden_state", ("batch", "seq", 384), "embedding"), ("pooler_output", ("batch", 768), "embedding"),
    ("new_state", ("batch", 2, 32), "state"), ("hn", (1, "batch", 64), "state"),
    ("mask", ("batch", 3, "h", "w"), "dense"), ("prob", ("batch", 1), "other"),
])
def test_output_kinds(name, shape, kind):
    from edgekd.models.io import ModelIO, TensorSpec

    io = ModelIO((TensorSpec("x", "float32", ("batch", 4)),), (TensorSpec(name, "float32", shape),))
    assert ModelIO.from_dict(io.to_dict()).outputs[0].kind == kind  # and it survives the manifest


def test_a_state_batched_on_axis_1_is_fed_there(zoo, runner):
    """A GRU VAD: input [batch, 512], state [2, batch, 64], sr [], and data holding one sample's state
    (2, 1, 64). Every step batches the state along axis 1 (the model's `batch` symbol says so): tiled at batch 8,
    and the recurrent state (stateN feeds state) is said, in export's listing too."""
    path, data = zoo["vad"]
    e = invoke_json(runner, "export", path)["models"]["model"]
    assert e["batch_axes"] == {"input": 0, "state": 1, "sr": None} and e["recurrent"] == [["state", "stateN"]]
    assert e["ran_with"]["state"] == [2, 1, 64]
    code, out, err = invoke(runner, "export", path)
    assert "samples on axis 1" in out and "recurrent: output stateN is the next call's state" in out
    code, out, err = invoke(runner, "bench", path, "--data", data, "--batch", "1,8", "--runs", "5", "--no-memory",
                            "--json")
    assert code == 0, err
    assert "input state is a recurrent state that output stateN carries" in err
    b = json.loads(out)
    assert b["models"]["model"]["inputs"] == {"input": [1, 512], "state": [2, 1, 64], "sr": []}
    assert {r["batch"] for r in b["records"]} == {1, 8}
    q = invoke_json(runner, "quantize", path, "--data", data, "--allow-slower", "--max-drop", "0.2")
    assert q["details"]["mode"] == "dynamic" and q["details"]["agreement_with_fp32"] > 0.8
    p8 = invoke_json(runner, "predict", path, "--profile", "raspberry-pi-4", "--batch", "8")
    p1 = invoke_json(runner, "predict", path, "--profile", "raspberry-pi-4")
    assert p8["latency_ms"] > p1["latency_ms"] > 0
    from edgekd.models.io import ModelIO, bind

    io = ModelIO.from_onnx(path)
    with np.load(data) as f:
        feeds = bind(io, {k: f[k] for k in f.files})
    full = bind(io, {"input": np.zeros((4, 512), np.float32), "state": np.ones((2, 4, 64), np.float32),
                     "sr": np.array(8000, np.int64)})  # a full state per sample: sliced along axis 1
    assert full.feed(np.arange(2))["state"].shape == (2, 2, 64) and len(full) == 4
    assert feeds.feed(np.arange(8))["state"].shape == (2, 8, 64) and len(feeds) == 200


def test_onnxruntime_log_lines_stay_off_stderr(tmp_path):
    """A model that fails inside a kernel at run time: onnxruntime logs `[E:onnxruntime:...]` to the process's
    stderr (not Python's), above edgekd's one line, unless every session edgekd opens is quieted."""
    import subprocess
    import sys

    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    shape = numpy_helper.from_array(np.array([1, 4], np.int64), "shape")  # only batch 1 fits this Reshape
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("Relu", ["r"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y], [shape])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "breaks.onnx")
    np.savez(tmp_path / "d.npz", x=np.ones((40, 4), np.float32))
    for step in (["bench", "--no-memory", "--runs", "3"], ["quantize"]):
        res = subprocess.run([sys.executable, "-m", "edgekd", step[0], str(tmp_path / "breaks.onnx"), "--data",
                              str(tmp_path / "d.npz"), *step[1:]], capture_output=True, text=True, cwd=tmp_path)
        lines = error_lines(res.stderr)
        assert res.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
        assert ":onnxruntime:" not in res.stderr, res.stderr


def test_quantize_without_data_says_what_would_feed_this_model(zoo, runner, tmp_path):
    """The hint fits the model's inputs (text for token ids, an .npz named after a VAD's inputs); an int8
    model is said to be int8 before any data is asked for."""
    code, o, e = invoke(runner, "quantize", zoo["text"][0])
    assert_usage_error(code, o, e, "needs --data", "sentences.txt", "--tokenizer")
    code, o, e = invoke(runner, "quantize", zoo["vad"][0])
    assert_usage_error(code, o, e, "needs --data", "named input, state, sr")
    code, o, e = invoke(runner, "quantize", zoo["segmenter"][0])
    assert_usage_error(code, o, e, "image folder", "pixels shaped (batch, 3, height, width)")
    q = tmp_path / "q.onnx"
    invoke_json(runner, "quantize", zoo["detector"][0], "--data", zoo["detector"][1], "--allow-slower", "--max-drop",
                "1", "--output", q)
    code, o, e = invoke(runner, "quantize", q)
    assert_usage_error(code, o, e, "already quantized")

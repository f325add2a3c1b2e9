"""Calibration writes a valid, loadable profile with its numbers marked as measured, and needs no torch."""
import json
import subprocess
import sys

import pytest
from conftest import invoke

from edgekd import profiles


@pytest.mark.slow
def test_calibrate_without_torch_keeps_base_facts(tmp_path):
    out = tmp_path / "pi.toml"
    code = (f"import sys; from edgekd.latency.calibrate import calibrate; "
            f"r = calibrate({str(out)!r}, name='my-pi', base='raspberry-pi-4', threads=[1, 2], quick=True); "
            f"print('torch' in sys.modules); print(r['points'])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    uses_torch, points = res.stdout.split()
    assert uses_torch == "False" and int(points) > 20
    p = profiles.load(str(out))
    assert p.name == "my-pi" and p.get("cpu.cores") == 4 and p.data["base"] == "raspberry-pi-4"
    assert p.source("cost.overhead_us").startswith("measured: edgekd profiles calibrate, ")
    assert p.source("cpu.cores").startswith("datasheet")
    cal = p.data["calibration"]
    assert cal["threads"] == [1, 2] and 0 <= cal["within_20"] <= 1
    assert 0 <= cal["repeat_within_20"] <= 1 and cal["repeat_median_abs_diff"] >= 0  # graphs timed twice


def test_repeatability_is_the_share_of_graphs_whose_two_timings_agree():
    from edgekd.latency.calibrate import repeatability

    assert repeatability([0.0, 0.05, 0.19, 0.25, 0.6]) == {"repeat_within_20": 0.6, "repeat_median_abs_diff": 0.19}
    assert repeatability([]) == {}


@pytest.mark.slow
def test_cli_calibrate_warns_when_the_machine_did_not_repeat_itself(tmp_path, runner, monkeypatch):
    """A profile calibrated while the machine's speed moved is still written, but the user is told why its
    predictions cannot be trusted more closely than that, and what to do."""
    import edgekd.latency.calibrate as cal

    real = cal.calibrate

    def noisy(*args, **kwargs):  # a real calibration, reported as if its graphs had not repeated
        return {**real(*args, **kwargs), "repeat_within_20": 0.55, "repeat_median_abs_diff": 0.21}

    monkeypatch.setattr(cal, "calibrate", noisy)
    out = tmp_path / "host.toml"
    code, stdout, err = invoke(runner, "profiles", "calibrate", "-o", out, "--quick", "--threads", "1", "--json")
    assert code == 0 and out.exists()
    assert json.loads(stdout)["repeat_within_20"] == 0.55
    assert "Warning: timed twice, only 55% of the whole graphs agreed within ±20% (median difference 21.0%)" in err
    assert "calibrate again" in err


@pytest.mark.slow
def test_cli_calibrate_writes_host_profile_usable_by_predict(tmp_path, runner):
    out = tmp_path / "host.toml"
    code, stdout, err = invoke(runner, "profiles", "calibrate", "-o", out, "--quick", "--threads", "1", "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["path"] == str(out) and res["cost"]["run_overhead_us"] >= 0
    assert 0 <= res["repeat_within_20"] <= 1
    prof = profiles.load(str(out))
    assert prof.data["runtime"]["int8_preset"] in profiles.INT8_PRESETS
    assert prof.source("memory.bandwidth_gbps").startswith("measured")
    # the preset is measured: four block kinds timed with uint8 and int8 activations
    assert prof.source("runtime.int8_preset").startswith("measured: edgekd profiles calibrate")
    figures = prof.calibration["int8_preset_ms"]
    assert figures["s8s8_over_u8s8"] > 0 and len(figures["graphs"]) == 4
    # quantize on this machine's own profile: the measured speed-up, and beside it what the profile predicted
    import real_models

    model, data = real_models.inverted(tmp_path)
    q = json.loads(invoke(runner, "quantize", model, "--data", data, "--profile", out, "--allow-slower",
                          "--output", tmp_path / "inv.int8.onnx", "--json")[1])["details"]
    assert "on this machine (p50" in q["speed"]["how"] and q["predicted"]["profile"] == prof.name
    assert q["predicted"]["low"] < q["predicted"]["speedup"] < q["predicted"]["high"]
    assert f"; {prof.name} predicted {q['predicted']['speedup']:.2f}x (likely " in q["verdict"]


@pytest.mark.slow
def test_calibrated_kernel_tables_price_nodes_and_bad_tables_fail_cleanly(tmp_path):
    """The calibrated profile carries per-family kernel tables; predictions read them (they differ from the
    profile's roofline alone), and a damaged table is a one-line error naming it."""
    import pytest
    import torch
    import torch.nn as nn

    from edgekd.errors import UsageError
    from edgekd.latency.calibrate import calibrate
    from edgekd.latency.kernels import NETWORK_GROUPS
    from edgekd.latency.predictor import predict_latency
    from edgekd.latency.tomlw import dumps

    out = tmp_path / "host.toml"
    calibrate(out, name="host", threads=[1, 2], quick=True)
    prof = profiles.load(str(out))
    tables = prof.data["kernels"]
    conv = next(k for k in tables if k.startswith("conv") and k.endswith(".fp32"))  # x86: conv-nchwc.fp32
    assert {"gemm.fp32", "conv.int8"} <= set(tables) and tables["top_threads"] == 2
    assert all(len(t["dims"]) == len(t["ratio"]) == len(t["speedup"]) > 0
               for name, t in tables.items() if isinstance(t, dict) and "dims" in t)
    # whole networks: a correction per op class and cache tier, and its leave-one-out error in [calibration]
    net = tables["network"]
    assert net["threads"] == [1, 2] and set(net) - {"threads"} <= set(NETWORK_GROUPS)
    assert all(0.5 <= f <= 3.0 for g, row in net.items() if g != "threads" for f in row)
    cal = prof.calibration
    assert cal["whole_models"] >= 16 and 0 <= cal["whole_model_within_10"] <= cal["whole_model_within_20"] <= 1
    assert cal["whole_model_median_error"] >= 0 and -1 < cal["whole_model_bias"] < 3
    assert prof.median_error == cal["whole_model_median_error"]  # what bands and sizing margins read
    comp = tables["composition"]
    assert comp["threads"] == [1, 2] and all(f > 0 for f in comp["fp32"] + comp["int8"])
    stream = tables["stream"]  # per thread count: ns per KB of weights streamed, never falling with footprint
    assert stream["threads"] == [1, 2] and all(len(r) == 8 for r in stream["mb"] + stream["ns_per_kb"])
    assert all(a <= b for row in stream["ns_per_kb"] for a, b in zip(row, row[1:]))
    model = tmp_path / "m.onnx"
    torch.onnx.export(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).eval(), (torch.randn(1, 3, 16, 16),),
                      str(model), dynamo=False, opset_version=17)
    with_tables = predict_latency(str(model), prof).latency_ms
    roofline = profiles.Profile({k: v for k, v in prof.data.items() if k != "kernels"}, prof.path)
    assert with_tables > 0 and with_tables != predict_latency(str(model), roofline).latency_ms
    assert predict_latency(str(model), prof, threads=2).latency_ms > 0
    for damage in ({"ratio": [-1.0]}, {"dims": []}, {"speedup": "fast"}):
        bad = {**prof.data, "kernels": {**tables, conv: {**tables[conv], **damage}}}
        (tmp_path / "bad.toml").write_text(dumps(bad))
        with pytest.raises(UsageError) as e:
            profiles.load(str(tmp_path / "bad.toml"))
        assert f"kernels.{conv}" in e.value.message and "\n" not in e.value.message


def test_each_kernel_runs_alone_as_the_graph_runs_it(tmp_path):
    """Calibration times every kernel a micro-benchmark runs as a one-node graph of the optimized model:
    each runs with optimizations off, is the very kernel the analysis priced (same op, same shapes), and
    int8 graphs yield their quantized kernels too."""
    import onnx

    from edgekd.deploy.quantize import host_preset
    from edgekd.deploy.runtime import session
    from edgekd.latency import micro
    from edgekd.latency.calibrate import _quantize
    from edgekd.latency.graph import analyze, isolate

    m = micro.inverted_residual(16, 8, 3)
    fp32, int8 = tmp_path / "ir.onnx", tmp_path / "ir.int8.onnx"
    onnx.save(m.model, str(fp32))
    _quantize(fp32, int8, m, host_preset())
    for path in (fp32, int8):
        cost, alone = isolate(path, "all")
        assert [n.op_type for n in cost.nodes] == [n.op_type for n in analyze(path, level="all").nodes]
        priced = [n for n in cost.nodes if n.op_class != "free"]
        assert [c.op_type for c, _, _ in alone] == [n.op_type for n in priced]
        assert [c.dims for c, _, _ in alone] == [n.dims for n in priced]
        for i, (node, model, feeds) in enumerate(alone):
            assert len(model.graph.node) == 1 and model.graph.node[0].op_type == node.op_type
            onnx.save(model, str(tmp_path / f"k{i}.onnx"))
            sess = session(tmp_path / f"k{i}.onnx", 2, level="disable", spin=False)
            out = sess.run(None, feeds)[0]
            assert list(out.shape) == node.shape
            assert sess.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    kinds = {c.kernel + "." + c.dtype for c, _, _ in isolate(int8, "all")[1]}
    assert any(k.startswith(("conv", "dwconv")) and k.endswith(".int8") for k in kinds), kinds


def test_isolated_kernels_of_an_exported_encoder_all_run(tmp_path):
    """A torch export with dynamic shapes runs shape arithmetic on integer tensors; those kernels cannot be
    fed random values, so they are left out, and every kernel that is isolated runs on its own."""
    import onnx
    import torch
    import torch.nn as nn

    from edgekd.deploy.runtime import session
    from edgekd.latency.graph import isolate

    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False).eval()
    path = tmp_path / "enc.onnx"
    torch.onnx.export(encoder, (torch.randn(2, 8, 16),), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    cost, alone = isolate(path, "all")
    assert 0 < len(alone) < len([n for n in cost.nodes if n.op_class != "free"])
    assert any(c.kernel in ("gemm", "bmm") for c, _, _ in alone)
    for i, (node, model, feeds) in enumerate(alone):
        onnx.save(model, str(tmp_path / f"k{i}.onnx"))
        out = session(tmp_path / f"k{i}.onnx", 1, level="disable", spin=False).run(None, feeds)[0]
        assert list(out.shape) == node.shape, node.op_type


def test_conv_kernel_variants_are_told_apart(tmp_path):
    """Convs of equal shape run different kernels: fp32 convs whose activation is not Relu (ReLU6 = Clip)
    pay an extra pass over the output, and int8 convs take MLAS's symmetric indirect kernels only for
    aligned channel counts. The last of a conv's dims says which, so kernel tables keep them apart."""
    import onnx

    from edgekd.deploy.quantize import host_preset
    from edgekd.latency import micro
    from edgekd.latency.calibrate import _quantize
    from edgekd.latency.graph import VARIANT, analyze

    def variants(m, level="extended", quantize=False):
        path = tmp_path / f"{m.name}.onnx"
        onnx.save(m.model, str(path))
        if quantize:
            _quantize(path, tmp_path / f"{m.name}.int8.onnx", m, host_preset())
            path = tmp_path / f"{m.name}.int8.onnx"
        return [n.dims[-1] for n in analyze(path, level=level).nodes if n.op_class in ("conv", "dwconv")]

    assert variants(micro.conv(32, 32, 16, 3, group=32, act="Clip")) == [VARIANT]
    assert variants(micro.conv(32, 32, 16, 3, group=32, act="Relu")) == [1.0]
    assert variants(micro.conv(16, 16, 16, 3, act=None)) == [1.0]
    assert variants(micro.conv(16, 32, 16, 3, act="Clip"), quantize=True) == [VARIANT]  # aligned: indirect conv
    assert variants(micro.conv(3, 16, 16, 3), quantize=True) == [1.0]                  # 3 input channels: im2col
    assert variants(micro.conv(16, 8, 16, 3), quantize=True) == [1.0]                  # 8 outputs: im2col
    assert variants(micro.conv(24, 24, 16, 3, group=24), quantize=True) == [1.0]       # 24 channels: generic dw
    assert variants(micro.conv(32, 32, 16, 3, group=32), quantize=True) == [VARIANT]


def test_every_gemm_knows_the_bytes_of_its_weights(tmp_path):
    """A GEMM's weight bytes (fp32 or int8, torch-style Gemm or MatMul) are what it streams from wherever
    the graph's weights live; biases, scales and zero points are not counted."""
    import onnx

    from edgekd.deploy.quantize import host_preset
    from edgekd.latency import micro
    from edgekd.latency.calibrate import _quantize
    from edgekd.latency.graph import analyze

    def gemms(m, quantize):
        path = tmp_path / f"{m.name}.onnx"
        onnx.save(m.model, str(path))
        if quantize:
            _quantize(path, tmp_path / f"{m.name}.int8.onnx", m, host_preset())
            path = tmp_path / f"{m.name}.int8.onnx"
        return [(n.op_type, n.weight_bytes) for n in analyze(path, level="all").nodes if n.kernel == "gemm"]

    assert gemms(micro.mlp_chain(1, [64, 128, 32], linear=True), True) == [("QGemm", 64 * 128), ("QGemm", 128 * 32)]
    assert [w for _, w in gemms(micro.mlp_chain(1, [64, 128, 32]), True)] == [64 * 128, 128 * 32]
    assert [w for _, w in gemms(micro.mlp_chain(1, [64, 128, 32], linear=True), False)] == [64 * 128 * 4, 128 * 32 * 4]


def test_kernel_tables_of_an_older_format_are_refused_with_the_fix(tmp_path):
    """Tables measured before kernels had variants would be read with the wrong dims: a one-line error
    names the field and says to calibrate again."""
    import pytest

    from edgekd.errors import UsageError
    from edgekd.latency.kernels import FORMAT, from_profile

    table = {"dims": [[1.0, 2.0]], "ratio": [1.0], "speedup": [1.0]}
    assert from_profile({"kernels": {"format": FORMAT, "top_threads": 2, "eltwise.fp32": table}}, "x.toml", 2)
    with pytest.raises(UsageError) as e:
        from_profile({"kernels": {"top_threads": 2, "eltwise.fp32": table}}, "x.toml", 2)
    assert "x.toml" in e.value.message and "kernels.format" in e.value.message and "\n" not in e.value.message
    assert "calibrate" in e.value.hint


def test_bound_runs_compute_into_preallocated_buffers(tmp_path):
    """Kernels are timed with IO binding: each run writes the kernel's real output into the bound buffer
    (no per-run numpy conversion), the same values sess.run returns."""
    import numpy as np
    import onnx

    from edgekd.deploy.runtime import session
    from edgekd.latency import micro
    from edgekd.latency.calibrate import Bound, measure_interleaved

    m = micro.conv(8, 16, 8, 3, act="Clip")
    onnx.save(m.model, str(tmp_path / "c.onnx"))
    sess = session(tmp_path / "c.onnx", 1, spin=False)
    want = sess.run(None, m.feeds)[0]
    run = Bound(sess, m.feeds)
    run.outputs[0][...] = -1.0
    run()
    assert np.allclose(run.outputs[0], want) and want.max() > 0 and want.max() <= 6.0
    onnx.save(micro.nothing().model, str(tmp_path / "e.onnx"))
    empty = session(tmp_path / "e.onnx", 1, level="disable", spin=False)
    plain, bound = measure_interleaved([(empty, micro.nothing().feeds), Bound(empty, micro.nothing().feeds)], rounds=2)
    assert 0 < bound and 0 < plain


def test_composition_factors_scale_kernel_times_and_bad_ones_fail_cleanly():
    """Kernels inside a graph take longer than alone by a factor calibration measures per kind of graph (fp32,
    or with quantized kernels) and thread count; predictions apply it (interpolated between measured thread
    counts) and a damaged entry is a one-line error naming the field."""
    import pytest

    from edgekd.errors import UsageError
    from edgekd.latency.kernels import FORMAT, from_profile

    table = {"dims": [[1.0, 2.0]], "ratio": [1.0], "speedup": [1.0]}
    raw = {"format": FORMAT, "top_threads": 4, "eltwise.fp32": table}
    plain = from_profile({"kernels": raw}, "x.toml", 4)
    assert plain.in_graph(1) == plain.in_graph(4, "int8") == 1.0
    comp = {"threads": [1, 4], "fp32": [1.1, 1.4], "int8": [0.9, 1.2]}
    k = from_profile({"kernels": {**raw, "composition": comp}}, "x.toml", 4)
    assert k.in_graph(1) == pytest.approx(1.1) and k.in_graph(4) == pytest.approx(1.4)
    assert k.in_graph(1, "int8") == pytest.approx(0.9) and k.in_graph(4, "int8") == pytest.approx(1.2)
    assert 1.1 < k.in_graph(2) < k.in_graph(3) < 1.4 and k.in_graph(16) == pytest.approx(1.4)
    for bad in ({**comp, "fp32": [1.0]}, {**comp, "threads": [0, 4]}, {**comp, "int8": [1.0, -1.0]},
                {"threads": [1], "fp32": ["x"], "int8": [1.0]}, {"threads": [1], "factor": [1.0]}, [1.0]):
        with pytest.raises(UsageError) as e:
            from_profile({"kernels": {**raw, "composition": bad}}, "x.toml", 4)
        assert "kernels.composition" in e.value.message and "\n" not in e.value.message


def test_weights_cost_more_in_a_graph_whose_weights_outgrow_a_cache():
    """A kernel timed alone finds its weights where a footprint of their own size lives; inside a graph,
    where all the graph's weights live. With the device's stream curve (seconds per weight byte at each
    footprint), a node pays the difference; nothing without a curve or when the graph holds only its
    weights. A damaged curve is a one-line error naming the field."""
    import pytest

    from edgekd.errors import UsageError
    from edgekd.latency.kernels import FORMAT, from_profile

    table = {"dims": [[1.0, 2.0]], "ratio": [1.0], "speedup": [1.0]}
    raw = {"format": FORMAT, "top_threads": 2, "eltwise.fp32": table}
    curve = {"threads": [1, 2], "mb": [[1.0, 4.0, 16.0], [1.0, 4.0, 16.0]],
             "ns_per_kb": [[20.0, 50.0, 100.0], [10.0, 25.0, 50.0]]}
    k = from_profile({"kernels": {**raw, "stream": curve}}, "x.toml", 2)
    mb = 2.0**20
    assert k.spill_s(mb, mb, 1) == 0.0 and k.spill_s(mb, 0.5 * mb, 1) == 0.0
    assert k.spill_s(mb, 16 * mb, 1) == pytest.approx(1024 * (100 - 20) * 1e-9)
    assert k.spill_s(mb, 16 * mb, 2) == pytest.approx(1024 * (50 - 10) * 1e-9)
    assert 0 < k.spill_s(mb, 2 * mb, 1) < k.spill_s(mb, 4 * mb, 1) < k.spill_s(mb, 64 * mb, 1)
    assert from_profile({"kernels": raw}, "x.toml", 2).spill_s(mb, 16 * mb, 1) == 0.0
    for bad in ({**curve, "threads": [1]}, {**curve, "mb": [[4.0, 1.0, 16.0], [1.0, 4.0, 16.0]]},
                {**curve, "ns_per_kb": [[20.0, -1.0, 100.0], [10.0, 25.0, 50.0]]}, [1.0]):
        with pytest.raises(UsageError) as e:
            from_profile({"kernels": {**raw, "stream": bad}}, "x.toml", 2)
        assert "kernels.stream" in e.value.message and "\n" not in e.value.message


def test_network_factors_scale_nodes_by_class_and_cache_tier_and_bad_ones_fail_cleanly():
    """The whole-network correction multiplies a node's time by its group's factor (op class, and whether
    its bytes fit in the profile's L2), interpolated between measured thread counts; a damaged entry is a
    one-line error naming the field."""
    import pytest

    from edgekd.errors import UsageError
    from edgekd.latency.graph import NodeCost
    from edgekd.latency.kernels import FORMAT, from_profile

    table = {"dims": [[1.0, 2.0]], "ratio": [1.0], "speedup": [1.0]}
    raw = {"format": FORMAT, "top_threads": 2, "eltwise.fp32": table}
    net = {"threads": [1, 2], "gemm.cache": [1.2, 1.4], "gemm.spill": [1.5, 1.8]}
    k = from_profile({"cpu": {"l2_kb": 512.0}, "kernels": {**raw, "network": net}}, "x.toml", 2)
    small = NodeCost("a", "MatMul", "gemm", "fp32", 1e6, 100e3)
    big = NodeCost("b", "MatMul", "gemm", "fp32", 1e6, 4e6)
    conv = NodeCost("c", "Conv", "conv", "fp32", 1e6, 100e3)
    assert k.network_factor(small, 1) == pytest.approx(1.2) and k.network_factor(big, 2) == pytest.approx(1.8)
    assert k.network_factor(conv, 1) == 1.0  # a group the fit left out keeps the kernels' figure
    assert from_profile({"kernels": raw}, "x.toml", 2).network_factor(big, 1) == 1.0
    for bad in ({**net, "gemm.cache": [1.0]}, {**net, "threads": [0, 2]}, {**net, "gemm.cache": [1.0, -1.0]},
                {**net, "convs.cache": [1.0, 1.0]}, [1.0]):
        with pytest.raises(UsageError) as e:
            from_profile({"kernels": {**raw, "network": bad}}, "x.toml", 2)
        assert "kernels.network" in e.value.message and "\n" not in e.value.message


def test_network_fit_recovers_how_much_slower_whole_networks_run_than_their_kernels(tmp_path):
    """Whole networks that take 1.3x their kernels' sum in GEMMs and 1.0x elsewhere: the fit finds those
    factors, and leaving one network out predicts it within a few percent."""
    import dataclasses

    import numpy as np
    import onnx
    import pytest

    from edgekd import profiles as prof_mod
    from edgekd.latency.calibrate import Point, network_errors, network_fit
    from edgekd.latency.graph import analyze
    from edgekd.latency.kernels import Kernels, network_group
    from edgekd.latency.networks import sampled_networks
    from edgekd.latency.predictor import per_node_seconds
    from edgekd.latency.roofline import Params

    prm = Params.from_profile(prof_mod.load("x86-server-avx512-vnni"))
    tables = Kernels({}, 1, 16)
    points = []
    for m in sampled_networks(2, seed=5):
        path = tmp_path / f"{m.name}.onnx"
        onnx.save(m.model, str(path))
        cost = analyze(path, level="extended")
        truth = sum(t * (1.3 if network_group(n, tables.l2_bytes).startswith("gemm") else 1.0)
                    for n, t in per_node_seconds(cost.nodes, prm, tables, 1)) + prm.run_s
        points.append(Point(m.name, "fp32", 1, cost, truth, m.name))
    fit = network_fit(points, prm, tables)[1]
    used = {network_group(n, tables.l2_bytes) for p in points for n in p.cost.nodes}
    for g in used:
        assert fit[g] == pytest.approx(1.3 if g.startswith("gemm") else 1.0, abs=0.08), g
    err = network_errors(points, prm, tables)
    assert np.median(np.abs(err)) < 0.05
    before = [p.seconds / (sum(t for _, t in per_node_seconds(p.cost.nodes, prm, tables, 1)) + prm.run_s)
              for p in points]
    assert max(before) > 1.1  # without the fit the kernels' sum was short
    held = dataclasses.replace(tables, network=network_fit(points, prm, tables))
    assert held.network_factor(next(n for n in points[2].cost.nodes if n.op_class == "gemm"), 1) > 1.2


def test_sampled_networks_are_whole_models_of_every_family_that_onnxruntime_runs():
    import onnx
    import onnxruntime as ort

    from edgekd.latency.networks import FAMILIES, sampled_networks

    nets = sampled_networks(1, seed=3)
    assert [n.name.split("_")[1] for n in nets] == list(FAMILIES)
    assert sampled_networks(1, seed=3)[0].name == nets[0].name  # a seed draws the same networks
    assert sampled_networks(1, seed=4, batches=(8,))[0].feeds["x"].shape[0] == 8
    for m in nets:
        onnx.checker.check_model(m.model)
        assert len(m.model.graph.node) >= 8
        out = ort.InferenceSession(m.model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, m.feeds)
        assert out[0].shape[0] == m.feeds["x"].shape[0]


def test_cache_sizes_are_read_from_sysfs_and_checked_in_profiles(tmp_path):
    """The host's L2/L3 come from sysfs (its format: 2048K, 32M); every built-in profile carries them with a
    source; a bad value is a one-line error naming the field."""
    import pytest

    from edgekd.errors import UsageError
    from edgekd.latency.calibrate import cache_kb
    from edgekd.latency.tomlw import dumps

    for i, (level, kind, size) in enumerate([(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"),
                                             (3, "Unified", "32M")]):
        d = tmp_path / "cache" / f"index{i}"
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    assert cache_kb(str(tmp_path / "cache")) == {"l2_kb": 2048.0, "l3_kb": 32768.0}
    assert cache_kb(str(tmp_path / "none")) == {}
    for name in profiles.builtin_files():
        p = profiles.load(name)
        assert p.get("cpu.l2_kb") > 0 and p.get("cpu.l3_kb") >= 0 and p.source("cpu.l2_kb"), name
    data = profiles.load("raspberry-pi-4").data
    for bad in (-1.0, "big"):
        (tmp_path / "bad.toml").write_text(dumps({**data, "cpu": {**data["cpu"], "l2_kb": bad}}))
        with pytest.raises(UsageError) as e:
            profiles.load(str(tmp_path / "bad.toml"))
        assert "cpu.l2_kb" in e.value.message and "\n" not in e.value.message

"""`edgekd compare`: a regression beyond the runs' noise fails CI (exit 1); the same numbers do not; bad
inputs are one line. Built from real bench.json files of one run, with their timed runs scaled."""
import json
import os

import pytest
from conftest import invoke, invoke_json
from test_bad_inputs import assert_usage_error


@pytest.fixture(scope="module")
def bench_json(project, tmp_path_factory):
    from click.testing import CliRunner

    run = tmp_path_factory.mktemp("cmp") / "run"
    r = CliRunner()
    invoke_json(r, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "1", "--out", run)
    invoke_json(r, "export", run)
    invoke_json(r, "bench", run, "--runs", "40", "--no-memory")
    return run / "bench.json"


def _scaled(src, dst, factor: float, only: str | None = None):
    """A copy of bench.json whose model `only` (or every model) ran `factor` times as long."""
    report = json.loads(src.read_text())
    for r in report["records"]:
        if only in (None, r["model"]):
            lat = r["latency_ms"]
            lat["samples_ms"] = [v * factor for v in lat["samples_ms"]]
            for k in ("p50", "p90", "p99", "mean"):
                lat[k] *= factor
    dst.write_text(json.dumps(report))
    return dst


def test_same_bench_is_within_noise(bench_json, runner):
    r = invoke_json(runner, "compare", bench_json, bench_json.parent, "--fail-if-slower", "5%")
    assert r["regressions"] == [] and all(x["verdict"] == "within noise" for x in r["rows"])
    assert {x["model"] for x in r["rows"]} >= {"student_fp32 b1 t1", "teacher_onnx b1 t1"}


def test_a_slower_student_fails_past_the_threshold(bench_json, runner, tmp_path):
    slow = _scaled(bench_json, tmp_path / "slow.json", 1.5, "student_fp32")
    code, out, err = invoke(runner, "compare", bench_json, slow, "--fail-if-slower", "0.2", "--json")
    r = json.loads(out)
    assert code == 1 and r["regressions"] == ["student_fp32 b1 t1"]
    assert "Regression: 1 regression(s) past 20%" in err
    row = next(x for x in r["rows"] if x["model"] == "student_fp32 b1 t1")
    assert row["ratio"] == pytest.approx(1.5, rel=1e-6) and row["low"] > 1
    # slower, but under the threshold: said, exit 0
    r = invoke_json(runner, "compare", bench_json, slow, "--fail-if-slower", "60%")
    assert r["regressions"] == [] and "none past the 60% threshold" in r["verdict"]
    faster = _scaled(bench_json, tmp_path / "fast.json", 0.5)
    r = invoke_json(runner, "compare", bench_json, faster)
    assert all(x["verdict"] == "faster" for x in r["rows"])


def test_bad_compare_inputs(bench_json, runner, tmp_path):
    other = json.loads(bench_json.read_text())
    other["schema_version"] = 99
    (tmp_path / "v99.json").write_text(json.dumps(other))
    assert_usage_error(*invoke(runner, "compare", bench_json, tmp_path / "v99.json"), "schema version 99",
                       "this edgekd reads version 2")
    other["schema_version"] = 1  # before the sweep's records: said, not misread
    del other["records"]
    (tmp_path / "v1.json").write_text(json.dumps(other))
    assert_usage_error(*invoke(runner, "compare", tmp_path / "v1.json", bench_json), "schema version 1")
    assert_usage_error(*invoke(runner, "compare", bench_json, tmp_path / "missing.json"), "does not exist")
    (tmp_path / "bad.json").write_text("{not json")
    assert_usage_error(*invoke(runner, "compare", bench_json, tmp_path / "bad.json"), "is not valid JSON", "line 1")
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)  # a RecursionError in the parser
    assert_usage_error(*invoke(runner, "compare", tmp_path / "deep.json", bench_json), "nests deeper")
    (tmp_path / "list.json").write_text("[]")
    assert_usage_error(*invoke(runner, "compare", tmp_path / "list.json", bench_json), "holds a JSON array")
    os.mkfifo(tmp_path / "fifo.json")  # nobody writes it: reading would wait forever
    assert_usage_error(*invoke(runner, "compare", bench_json, tmp_path / "fifo.json"), "is a FIFO")
    code, out, err = invoke(runner, "compare", bench_json, bench_json, "--fail-if-slower", "lots")
    assert code == 2 and "not a fraction" in err


def test_report_rebuilds_markdown_and_plots(bench_json, runner):
    from edgekd.api.report import pareto

    run = bench_json.parent
    (run / "report.md").unlink()
    r = invoke_json(runner, "report", run)
    assert r["plots"] == ["quality_latency.png", "latency.png"]
    text = (run / "report.md").read_text()
    assert "![quality_latency](quality_latency.png)" in text and "| student_fp32 |" in text
    assert (run / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pareto({"slow_good": (10.0, 0.99), "fast_ok": (1.0, 0.9), "slow_bad": (12.0, 0.8)}) == ["fast_ok",
                                                                                                   "slow_good"]


@pytest.mark.parametrize("forge", [
    lambda r: r.update(latency_ms={"p50": float("nan")}),
    lambda r: r.update(latency_ms={"p50": -1.0}),
    lambda r: r.update(latency_ms={"p50": "fast"}),
    lambda r: r["latency_ms"].update(samples_ms=["1", "2", "3"]),
    lambda r: r.pop("latency_ms"),
])
def test_a_forged_bench_json_is_refused_not_passed(bench_json, runner, tmp_path, forge):
    import json

    report = json.loads(bench_json.read_text())
    forge(report["records"][0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(report))
    code, o, e = invoke(runner, "compare", bench_json, bad, "--fail-if-slower", "5%")
    assert_usage_error(code, o, e, "record 0")


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_the_bootstrap_interval_matches_resampling_and_stays_small_for_many_runs(n):
    """The medians are drawn from their exact law instead of from built resamples (2000 x 100000 runs held
    1.6 GB): their quantiles must match brute-force resampling, and a 10^6-run bench must not allocate it."""
    import numpy as np

    from edgekd.deploy import measure as M

    x = np.random.default_rng(n).lognormal(0, 0.3, n)
    exact = M._resampled_medians(x, np.random.default_rng(0))
    brute = np.median(np.random.default_rng(1).choice(x, (20000, n)), axis=1)
    assert exact.mean() == pytest.approx(brute.mean(), rel=0.01)
    assert exact.std() == pytest.approx(brute.std(), rel=0.1, abs=1e-9)
    if n < 10:  # only medians a resample can have (few enough to all be drawn)
        assert set(np.round(exact, 9)) <= set(np.round(brute, 9))
    import tracemalloc

    big = np.random.default_rng(0).lognormal(0, 0.1, 10**6)  # 8 MB
    tracemalloc.start()
    r, lo, hi = M.ratio_interval(big, big * 1.1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert lo < r < hi and r == pytest.approx(1.1) and hi - lo < 0.01
    assert peak < 100e6  # numpy reports its buffers to tracemalloc; resamples would be 16 GB



def test_a_bench_keeps_its_figures_from_every_run_and_a_bounded_sample_of_them():
    import numpy as np

    from edgekd.deploy.measure import KEPT_SAMPLES, percentiles

    runs = np.random.default_rng(0).lognormal(0, 0.2, 3 * KEPT_SAMPLES)
    lat = percentiles(list(runs))
    assert lat["runs"] == len(runs) and lat["p50"] == pytest.approx(float(np.median(runs)))
    assert len(lat["samples_ms"]) == KEPT_SAMPLES
    assert np.median(lat["samples_ms"]) == pytest.approx(lat["p50"], rel=0.01)

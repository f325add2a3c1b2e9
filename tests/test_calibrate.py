"""Calibration writes a valid, loadable profile with its numbers marked as measured, and needs no torch."""
import json
import subprocess
import sys

from conftest import invoke
from edgekd import profiles


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
    assert p.data["calibration"]["threads"] == [1, 2] and 0 <= p.data["calibration"]["within_20"] <= 1


def test_cli_calibrate_writes_host_profile_usable_by_predict(tmp_path, runner):
    out = tmp_path / "host.toml"
    code, stdout, err = invoke(runner, "profiles", "calibrate", "-o", out, "--quick", "--threads", "1", "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["path"] == str(out) and res["cost"]["run_overhead_us"] >= 0
    prof = profiles.load(str(out))
    assert prof.data["runtime"]["int8_preset"] in profiles.INT8_PRESETS
    assert prof.source("memory.bandwidth_gbps").startswith("measured")

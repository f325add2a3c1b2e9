"""The real device one option away (issue 18), measured on this host:

1. The runtime install: a venv with `pip install edgekd` only (onnxruntime, onnx, numpy, click, rich), its size
   on disk and its import time (`import edgekd.api.bench` and `edgekd profiles list`) against the full install
   (.venv: the train, hf, report and dev extras).
2. `bench --on ssh://...@127.0.0.1` (a throwaway sshd, the runtime venv as the device's python) against a local
   `bench` of the same run and settings on the same machine, alternated (local, device, local, device): each
   model's p50 both ways, and the overhead (check, copy, run, clean-up) apart from the measurements.

Usage: python benchmarks/remote_device.py  ->  results/remote_device.json
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import write_result

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the throwaway sshd the tests use
from sshd import throwaway_sshd  # noqa: E402

import edgekd  # noqa: E402
from edgekd.deploy.measure import host_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def runtime_venv(root: Path) -> Path:
    """`pip install edgekd` (the wheel pip builds from this tree, with its runtime dependencies only)."""
    venv = root / "runtime"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "--quiet", str(ROOT)], check=True,
                   stderr=subprocess.DEVNULL)
    return venv


def timed(cmd: list[str], n: int = 5) -> float:
    """Median wall seconds of `cmd` over n runs (after one to warm the file cache)."""
    subprocess.run(cmd, check=True, capture_output=True)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def install_figures(runtime: Path) -> dict:
    full = ROOT / ".venv"
    site = lambda v: next((v / "lib").glob("python3*/site-packages"))  # noqa: E731
    has_torch = subprocess.run([str(runtime / "bin/python"), "-c", "import torch"], capture_output=True).returncode
    out = {"runtime_mb": du_mb(site(runtime)), "full_mb": du_mb(site(full)), "runtime_has_torch": has_torch == 0}
    for name, venv in (("runtime", runtime), ("full", full)):
        out[f"{name}_import_s"] = timed([str(venv / "bin/python"), "-c", "import edgekd.api.bench, onnxruntime"])
        out[f"{name}_profiles_list_s"] = timed([str(venv / "bin/edgekd"), "profiles", "list", "--json"])
    return out


def remote_figures(run: Path, runtime: Path, d: Path) -> dict:
    opts = {"threads": "1", "runs": 300, "memory": False}
    with throwaway_sshd(d) as (base, config):
        os.environ["EDGEKD_SSH_OPTIONS"] = f"-F {config}"
        url = f"{base}?python={runtime / 'bin/python'}"
        local, device, overhead = [], [], []
        for _ in range(2):
            local.append(edgekd.bench(run, **opts).report["models"])
            r = edgekd.bench(run, on=url, **opts).report
            device.append(r["models"])
            overhead.append(r["overhead"])
    per = {}
    for k in device[0]:
        lo = statistics.median(m[k]["latency_ms"]["p50"] for m in local)
        de = statistics.median(m[k]["latency_ms"]["p50"] for m in device)
        per[k] = {"local_p50_ms": lo, "device_p50_ms": de, "ratio": de / lo}
    return {"models": per, "max_abs_difference": max(abs(v["ratio"] - 1) for v in per.values()),
            "overhead_s": {k: statistics.median(o[k] for o in overhead) for k in overhead[0]}}


def main() -> None:
    with tempfile.TemporaryDirectory() as td:
        root = Path(td)
        run = root / "demo"
        edgekd.demo(str(run), show_progress=False)
        runtime = runtime_venv(root)
        out = {"host": host_info(), "install": install_figures(runtime)}
        i = out["install"]
        print(f"runtime install {i['runtime_mb']:.0f} MB (torch: {i['runtime_has_torch']}) vs full "
              f"{i['full_mb']:.0f} MB; import {i['runtime_import_s']:.2f} vs {i['full_import_s']:.2f} s; "
              "`profiles list` "
              f"{i['runtime_profiles_list_s']:.2f} vs {i['full_profiles_list_s']:.2f} s", flush=True)
        (root / "sshd").mkdir()
        out["remote"] = remote_figures(run, runtime, root / "sshd")
        for k, v in out["remote"]["models"].items():
            print(f"{k}: local {v['local_p50_ms']:.4f} ms, --on 127.0.0.1 {v['device_p50_ms']:.4f} ms "
                  f"({v['ratio'] - 1:+.1%})")
        print(f"overhead per --on run: {out['remote']['overhead_s']}")
    print(f"wrote {write_result('remote_device', out)}")


if __name__ == "__main__":
    main()

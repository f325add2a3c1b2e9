"""Installs: a wheel ships the profiles; the runtime side (what a device runs) imports neither torch nor
scikit-learn; a plain source copy and edgekd's runtime wheel on PYTHONPATH find the built-in profiles too; a
runtime-only install asked to train says what to install, in one line."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import error_lines

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_profiles_and_console_script(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("edgekd-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    shipped = {Path(n).name for n in names if n.startswith("edgekd/profile_data/") and n.endswith(".toml")}
    assert shipped == {p.name for p in (ROOT / "profiles").glob("*.toml")}
    assert "edgekd = edgekd.cli:main" in entry_points


def test_help_is_fast_and_imports_no_torch():
    code = ("import sys, edgekd.cli; edgekd.cli.cli.main(['--help'], standalone_mode=False); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


BLOCKED = "import sys; sys.modules['torch'] = None; sys.modules['sklearn'] = None; "


def test_bench_and_predict_of_a_plain_onnx_need_no_torch(tmp_path):
    """The runtime side (bench, predict, compare, report, providers, profiles, export of a plain .onnx) runs
    where neither torch nor scikit-learn can be imported, a data file without a test split included."""
    import numpy as np
    from onnx import TensorProto, helper, save

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32))
    for args in (["bench", "m.onnx", "--runs", "3", "--data", "x.npz", "--teacher", "m.onnx", "--threads", "1,2"],
                 ["predict", "m.onnx", "--profile", "raspberry-pi-4"], ["export", "m.onnx"], ["providers"],
                 ["profiles", "list"], ["profiles", "show", "raspberry-pi-4"]):
        res = _cli(args, tmp_path)
        assert res.returncode == 0, (args, res.stderr[-800:])
    bench = _cli(["bench", "m.onnx", "--runs", "5", "--json"], tmp_path).stdout
    (tmp_path / "bench.json").write_text(bench)
    for args in (["compare", "bench.json", "bench.json"], ["report", "bench.json"]):
        res = _cli(args, tmp_path)
        assert res.returncode == 0, (args, res.stderr[-800:])
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")


def _cli(args: list[str], cwd: Path, pythonpath: str | None = None, python: str = sys.executable):
    code = BLOCKED + f"from edgekd.cli import cli; cli.main({args!r}, prog_name='edgekd')"
    env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    return subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)


def test_training_on_a_runtime_install_says_what_to_install(tmp_path):
    res = _cli(["distill", "--teacher", "t.py:build", "--data", "digits", "--out", "r"], tmp_path)
    lines = error_lines(res.stderr)
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "this needs torch" in lines[0] and "torch==2.13.0" in lines[0]
    assert 'pip install "edgekd[train] @ file:' in lines[0]
    assert not (tmp_path / "r").exists()


def test_profiles_from_a_source_copy_and_from_the_runtime_wheel(tmp_path):
    """edgekd copied as source (no install, as the README's device section does) and the runtime wheel that
    `--on` ships, each alone on PYTHONPATH of a python without edgekd installed, find every built-in profile."""
    import shutil

    from edgekd.deploy.remote import runtime_wheel
    from edgekd.profiles import builtin_files

    shutil.copytree(ROOT / "edgekd", tmp_path / "src" / "edgekd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "profiles", tmp_path / "src" / "profiles")
    wheel = runtime_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        assert {"edgekd/device_job.py", "edgekd/profile_data/raspberry-pi-4.toml"} <= set(z.namelist())
    # the torch-free venv make test builds has no edgekd installed (an editable install would answer instead)
    ov = ROOT / os.environ.get("EDGEKD_OPENVINO_PYTHON", ".venv-openvino/bin/python")
    python = str(ov) if ov.is_file() else sys.executable
    for where in (str(tmp_path / "src"), str(wheel)):
        code = (f"import sys, json; sys.path.insert(0, {where!r}); import edgekd;"
                " from edgekd.profiles import builtin_files, load;"
                " print(json.dumps([edgekd.__file__, sorted(builtin_files()), load('raspberry-pi').name]))")
        res = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-600:]
        file, names, pi = json.loads(res.stdout)
        assert file.startswith(where) and names == sorted(builtin_files()) and pi == "raspberry-pi-4"

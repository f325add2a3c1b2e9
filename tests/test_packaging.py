"""A non-editable install must still find the profiles: they ship inside the wheel as package data."""
import subprocess
import sys
import zipfile
from pathlib import Path

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


def test_bench_and_predict_of_a_plain_onnx_need_no_torch(tmp_path):
    """The runtime side (bench, predict, export of a plain .onnx) runs where torch cannot be imported."""
    from onnx import TensorProto, helper, save

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    for args in (["bench", "m.onnx", "--runs", "3"], ["predict", "m.onnx", "--profile", "raspberry-pi-4"],
                 ["export", "m.onnx"]):
        code = ("import sys; sys.modules['torch'] = None; from edgekd.cli import cli; "
                f"cli.main({args!r}, prog_name='edgekd')")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
        assert res.returncode == 0, (args, res.stderr[-800:])

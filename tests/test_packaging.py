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

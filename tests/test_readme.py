"""Every command in the README's command table, and its Python API block, run the way a user would run
them, on tiny data: a README command that crashes fails CI."""
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import invoke, invoke_json

README = Path(__file__).resolve().parents[1] / "README.md"
# commands run elsewhere (too slow to run twice): the test that runs each
ELSEWHERE = {"profiles calibrate": "test_calibrate.py::test_cli_calibrate_writes_host_profile_usable_by_predict",
             "device setup": "test_remote.py::test_device_setup_then_bench_uses_the_venv_and_keeps_the_models"}


def table_commands() -> list[str]:
    """`distill`, `profiles show`, ... : the commands the README's command table documents."""
    text = README.read_text()
    table = text[text.index("| command | what it does |"):].split("\n\n")[0]
    found = []
    for cell in re.findall(r"^\| (.+?) \| ", table, flags=re.M)[1:]:
        for cmd in re.findall(r"`edgekd ((?:profiles |device )?[a-z]+)", cell):
            found.append(cmd)
    return list(dict.fromkeys(found))


def run_dir(project, runner, tmp_path) -> Path:
    run = tmp_path / "run"
    invoke_json(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data", f"{project}/data.npz",
                "--student", "mlp:hidden=8", "--epochs", "2", "--out", run)
    return run


RUNS = {
    "distill": lambda p, r, t: invoke_json(r, "distill", "--teacher", f"{p}/teacher.py:build", "--data",
                                           f"{p}/data.npz", "--student", "mlp:hidden=8", "--epochs", "1",
                                           "--method", "kd+hint:0.5", "--out", t / "d"),
    "size": lambda p, r, t: invoke_json(r, "size", "--teacher", f"{p}/teacher.py:build", "--data", f"{p}/data.npz",
                                        "--profile", "raspberry-pi-4", "--student", "mlp", "--budget-ms", "5"),
    "profiles list": lambda p, r, t: invoke_json(r, "profiles", "list"),
    "providers": lambda p, r, t: invoke_json(r, "providers"),
    "profiles show": lambda p, r, t: invoke_json(r, "profiles", "show", "raspberry-pi"),
}


@pytest.mark.parametrize("command", [c for c in table_commands() if c not in ELSEWHERE])
def test_every_readme_command_runs(project, runner, tmp_path, command):
    if command in RUNS:
        assert RUNS[command](project, runner, tmp_path)
        return
    if command == "pipeline":  # test_readme_pipeline_on_digits runs the README's own example
        r = invoke_json(runner, "pipeline", "--teacher", f"{project}/teacher.py:build", "--data",
                        f"{project}/data.npz", "--student", "mlp:hidden=8", "--epochs", "1", "--runs", "5",
                        "--max-drop", "0.5", "--out", tmp_path / "p")
        assert set(r) == {"distill", "export", "quantize", "bench"}
        return
    run = run_dir(project, runner, tmp_path)
    invoke_json(runner, "export", run)
    if command == "export":
        assert (run / "student.onnx").is_file()
    elif command == "quantize":
        assert invoke_json(runner, "quantize", run, "--max-drop", "0.5", "--allow-slower")["size_bytes"] > 0
    elif command == "bench":
        invoke_json(runner, "quantize", run, "--max-drop", "0.5", "--allow-slower")
        b = invoke_json(runner, "bench", run, "--runs", "5", "--threads", "1,2", "--batch", "1,8")
        assert len(b["models"]) == 4 and len(b["records"]) == 4 * len({1, min(2, os.cpu_count() or 1)}) * 2
        assert (run / "report.html").is_file()
    elif command == "report":
        invoke_json(runner, "bench", run, "--runs", "5", "--no-memory")
        assert invoke_json(runner, "report", run)["report"].endswith("report.md")
    elif command == "compare":
        invoke_json(runner, "bench", run, "--runs", "5", "--no-memory")
        assert invoke_json(runner, "compare", run / "bench.json", run, "--fail-if-slower", "50%")["rows"]
    elif command == "predict":
        assert invoke_json(runner, "predict", run / "student.onnx", "--profile", "raspberry-pi-4",
                           "--threads", "4")["latency_ms"] > 0
    else:
        pytest.fail(f"the README documents `edgekd {command}` but no test runs it: add it here")


def test_the_table_is_what_the_cli_has(runner):
    """Every documented command exists, and every command the CLI has is documented."""
    from edgekd.cli import cli

    documented = set(table_commands())
    groups = ("profiles", "device")
    have = {n for n in cli.commands if n not in (*groups, "demo")} | {f"{g} {n}" for g in groups for n in
                                                                        cli.commands[g].commands}
    assert documented == have, (documented ^ have)


def test_the_readme_tables_list_every_registered_method_and_every_module():
    """The methods table names every method the registry has (and no other); the architecture table names every
    module and package of edgekd/ (a new one must be described)."""
    from edgekd.kd.methods import METHODS

    text = README.read_text()
    methods = text[text.index("| method | family | loss |"):].split("\n\n")[0]
    assert set(re.findall(r"^\| `(\w+)` \|", methods, re.M)) == set(METHODS)
    arch = text[text.index("| module | responsibility |"):].split("\n\n")[0]
    pkg = README.parent / "edgekd"
    for path in sorted(pkg.iterdir()):
        if path.name.startswith("_") or path.name in ("py.typed", "profile_data") or path.suffix not in ("", ".py"):
            continue
        rel = f"edgekd/{path.name}" + ("/" if path.is_dir() else "")
        if path.is_dir():
            assert f"`{rel}`" in arch, rel
            for mod in sorted(p.stem for p in path.glob("*.py") if not p.stem.startswith("_")):
                assert f"`{mod}`" in arch or f"`{mod}.py`" in arch or mod in arch, f"{rel}{mod}.py"
        else:
            assert f"`{rel}`" in arch, rel


@pytest.mark.slow
def test_readme_pipeline_on_digits(runner, tmp_path):
    """`edgekd pipeline --teacher ... --data digits --profile raspberry-pi-4`, end to end, with a digits
    teacher saved as a state dict (what the demo trains)."""
    from edgekd.api.pipeline import DEMO_ARCH, demo_teacher

    weights, _ = demo_teacher(tmp_path, show_progress=False)
    r = invoke_json(runner, "pipeline", "--teacher", weights, "--arch", DEMO_ARCH, "--data", "digits",
                    "--profile", "raspberry-pi-4", "--epochs", "2", "--runs", "5", "--no-memory",
                    "--out", tmp_path / "run")
    assert r["distill"]["sizing"]["profile"] == "raspberry-pi-4"
    int8 = r["bench"]["models"].get("student_int8")
    assert (int8["accuracy"] > 0.5) if int8 else r["quantize"]["written"] is False  # slower int8 is not written
    assert r["bench"]["models"]["student_fp32"]["accuracy"] > 0.5 and r["bench"]["verdict"]


def test_readme_python_api(project, tmp_path):
    """The README's Python API block, verbatim, in a folder with the teacher.py and data.npz it names."""
    text = README.read_text()
    block = text[text.index("## Python API"):].split("```python\n", 1)[1].split("```", 1)[0]
    for name in ("teacher.py", "teacher_weights.pt", "data.npz"):
        shutil.copy(project / name, tmp_path / name)
    block = block.replace("epochs=30", "epochs=2")  # the one change: a quick run
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    assert (tmp_path / "runs" / "x" / "bench.json").is_file()


def test_help_of_every_command_lists_its_declared_options(runner):
    """Options are declared once: each step's dataclass fields are its CLI options."""
    from edgekd.api.options import BenchOptions, DistillOptions, QuantizeOptions, fields

    for cmd, cls in (("distill", DistillOptions), ("quantize", QuantizeOptions), ("bench", BenchOptions)):
        code, out, _ = invoke(runner, cmd, "--help")
        assert code == 0
        for f in fields(cls):
            flag = f.metadata.get("flag")
            name = ("--" + flag.split("/")[0]) if flag else "--" + f.name.replace("_", "-")
            assert name in out, (cmd, name)

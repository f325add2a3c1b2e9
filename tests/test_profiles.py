"""Profiles load by name, alias or path; bad files fail with one line naming the file and the field."""

import pytest
from conftest import invoke, invoke_json

from edgekd import profiles
from edgekd.errors import UsageError


def test_every_builtin_profile_loads_and_cites_sources():
    for p in profiles.list_profiles():
        for field, (typ, _) in profiles.FIELDS.items():
            if typ in (int, float):
                assert p.source(field), (p.name, field)


def test_alias_resolves_and_show_says_so(runner):
    p = profiles.load("raspberry-pi")
    assert p.name == "raspberry-pi-4" and p.is_alias
    code, out, _ = invoke(runner, "profiles", "show", "raspberry-pi")
    assert code == 0 and "alias of 'raspberry-pi-4'" in out
    shown = invoke_json(runner, "profiles", "show", "raspberry-pi")
    assert shown["resolved_from_alias"] == "raspberry-pi" and shown["name"] == "raspberry-pi-4"
    listed = invoke_json(runner, "profiles", "list")
    assert "raspberry-pi-4" in {r["name"] for r in listed}


def _text() -> str:
    return profiles.builtin_files()["raspberry-pi-4"].read_text()


def test_profile_from_a_path(tmp_path, runner):
    path = tmp_path / "mine.toml"
    path.write_text(_text().replace('name = "raspberry-pi-4"', 'name = "mine"'))
    assert profiles.load(str(path)).name == "mine"
    assert invoke_json(runner, "profiles", "show", path)["name"] == "mine"


@pytest.mark.parametrize("old, new, needle", [
    ("cores = 4", "cores = = 4", "line"),
    ("cores = 4\n", "", "missing field `cpu.cores`"),
    ("cores = 4", "cores = -4", "`cpu.cores` must be > 0"),
    ("cores = 4", 'cores = "four"', "`cpu.cores` must be a int"),
    ('isa = ["neon"]', 'isa = ["neon", "avx9000"]', "unknown value 'avx9000'"),
    ('"memory.bandwidth_gbps" = ', '"memory.bandwidthx" = ', "`memory.bandwidth_gbps` has no source"),
    # tomllib recurses per level: these were RecursionError, an "unexpected error" line
    ("cores = 4", "cores = " + "[" * 5000 + "]" * 5000, "nests arrays or tables deeper"),
    ("cores = 4", "cores = " + "{a = " * 5000 + "1" + "}" * 5000, "nests arrays or tables deeper"),
])
def test_bad_profile_files(tmp_path, runner, old, new, needle):
    text = _text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(UsageError) as e:
        profiles.load(str(path))
    assert needle in e.value.message and "bad.toml" in e.value.message
    code, out, err = invoke(runner, "profiles", "show", path)
    assert code == 2 and err.count("\n") == 1 and needle in err


def test_every_source_a_profile_cites_can_be_opened():
    """A public URL, or a section of profiles/SOURCES.md (shipped in the repo and the package) that exists."""
    import re
    from pathlib import Path

    from edgekd import profiles

    root = Path(__file__).resolve().parents[1]
    anchors = {re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
               for h in re.findall(r"^## (.+)$", (root / "profiles" / "SOURCES.md").read_text(), flags=re.M)}
    for p in profiles.list_profiles():
        for field, source in p.data["sources"].items():
            refs = re.findall(r"profiles/SOURCES\.md#([a-z0-9-]+)", source)
            assert refs or "http" in source or source.startswith("measured:"), (p.name, field, source)
            assert set(refs) <= anchors, (p.name, field, set(refs) - anchors)

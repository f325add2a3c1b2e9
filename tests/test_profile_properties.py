"""Property tests: no TOML text, and no mutation of a valid profile, crashes the loader with anything but
the one-line UsageError."""
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekd import profiles
from edgekd.errors import UsageError
from edgekd.latency.tomlw import dumps

BASE = tomllib.loads(profiles.builtin_files()["raspberry-pi-4"].read_text())
scalars = st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                    st.booleans(), st.lists(st.text(max_size=6), max_size=3), st.lists(st.integers(), max_size=3))


def _check(text: str) -> None:
    try:
        profiles.parse(text, "fuzz.toml")
    except UsageError as e:
        assert e.message.startswith("fuzz.toml") and "\n" not in e.one_line()


@given(st.text(max_size=300))
@settings(max_examples=150, deadline=None)
def test_arbitrary_text_gives_a_one_line_error(text):
    _check(text)


@given(field=st.sampled_from(sorted(profiles.FIELDS)), value=scalars, drop=st.booleans())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_profiles_load_or_fail_cleanly(field, value, drop):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    node = data
    parts = field.split(".")
    for p in parts[:-1]:
        node[p] = dict(node[p])
        node = node[p]
    if drop:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    try:
        text = dumps(data)
    except (TypeError, ValueError):
        return
    _check(text)


def test_writer_round_trips_every_builtin_profile():
    for name, path in profiles.builtin_files().items():
        data = tomllib.loads(path.read_text())
        assert tomllib.loads(dumps(data)) == data, name

"""Everything users add by name sits in one kind of registry: register, names, lookup with "did you mean"."""
from dataclasses import dataclass

import pytest
from conftest import invoke
from test_bad_inputs import assert_usage_error

from edgekd.errors import UsageError
from edgekd.registry import Registry


@dataclass
class Thing:
    name: str


def test_registry_keeps_order_puts_first_in_front_and_names_the_closest_unknown():
    reg: Registry[Thing] = Registry("widget", "e.g. --widget alpha")
    a, b = reg.register(Thing("alpha")), reg.register(Thing("beta"))
    assert reg.names() == ["alpha", "beta"] and reg.lookup("beta") is b and reg["alpha"] is a
    reg.register(Thing("gamma"), first=True)
    assert reg.names() == ["gamma", "alpha", "beta"]
    with pytest.raises(UsageError) as e:
        reg.lookup("alpah", "in --widget alpah")
    assert e.value.message == "unknown widget 'alpah' in --widget alpah (known: gamma, alpha, beta)"
    assert e.value.hint == "did you mean 'alpha'?"
    with pytest.raises(UsageError) as e:
        reg.lookup("zzz")
    assert e.value.hint == "e.g. --widget alpha"


def test_methods_families_loaders_and_eps_are_registries_a_user_extends():
    from edgekd.deploy.providers import EPS
    from edgekd.kd.methods import METHODS, parse
    from edgekd.models.students import FAMILIES
    from edgekd.models.teachers import LOADERS

    for reg in (METHODS, FAMILIES, LOADERS, EPS):
        assert isinstance(reg, Registry) and reg.names()
    assert {"kd", "dkd", "rkd", "minilm"} <= set(METHODS) and {"mlp", "resnet", "mobilenet"} <= set(FAMILIES)
    assert list(LOADERS)[0] == "hf" and "cpu" in EPS
    with pytest.raises(UsageError) as e:
        parse("kd+hnt:0.5")
    assert "unknown method 'hnt' in --method 'kd+hnt:0.5'" in e.value.message and e.value.hint == \
        "did you mean 'hint'?"


def test_a_mistyped_family_on_the_cli_is_one_line_with_the_closest(project, runner, tmp_path):
    code, out, err = invoke(runner, "distill", "--teacher", f"{project}/teacher.py:build", "--data",
                            f"{project}/data.npz", "--student", "mobilnet:width=0.5", "--out", tmp_path / "r")
    assert_usage_error(code, out, err, "unknown student family 'mobilnet'", "did you mean 'mobilenet'?")


from dataclasses import dataclass
from typing import Literal

import pytest

from vladv.errors import OptionError
from vladv.options import (
    describe_options,
    option,
    options_to_dict,
    parse_assignments,
    parse_number,
    resolve_options,
)


@dataclass(frozen=True)
class Opts:
    eps: float = option(2 / 255, "radius", min=0, max=1)
    steps: int = option(10, "steps", min=0)
    norm: Literal["linf", "l2"] = option("linf", "norm")
    random_start: bool = option(True, "random start")
    scales: tuple[float, ...] = option((0.5, 0.75), "scales", min=0)
    mlm: str = option("bert", "masked LM")
    limit: int | None = option(None, "optional cap")


def test_parse_number_fractions_and_floats():
    assert parse_number("2/255") == pytest.approx(2 / 255)
    assert parse_number(" 0.5 ") == 0.5
    assert parse_number("1e-3") == 1e-3
    for bad in ("abc", "2/", "1/0", "nan", "inf", ""):
        with pytest.raises((ValueError, ZeroDivisionError)):
            parse_number(bad)


def test_resolve_converts_strings_by_type():
    o = resolve_options(
        "attack 'x'",
        Opts,
        {
            "eps": "4/255",
            "steps": "3",
            "norm": "l2",
            "random_start": "false",
            "scales": "1,1.5",
            "limit": "7",
        },
    )
    assert o.eps == pytest.approx(4 / 255) and o.steps == 3 and o.norm == "l2"
    assert o.random_start is False and o.scales == (1.0, 1.5) and o.limit == 7
    assert resolve_options("attack 'x'", Opts, {"limit": "none"}).limit is None
    assert resolve_options("attack 'x'", Opts, {"random-start": True}).random_start is True


def test_defaults_and_dict():
    o = resolve_options("attack 'x'", Opts)
    assert options_to_dict(o)["scales"] == [0.5, 0.75]
    rows = {r["name"]: r for r in describe_options(Opts)}
    assert rows["eps"]["help"] == "radius" and "2/255" in rows["eps"]["type"]


@pytest.mark.parametrize(
    "given,fragment",
    [
        ({"epss": "1"}, "unknown option 'epss'; did you mean 'eps'?"),
        ({"eps": "abc"}, "option 'eps' expects a number"),
        ({"eps": "2"}, "must lie in [0, 1]"),
        ({"steps": "1.5"}, "expects an integer"),
        ({"norm": "l3"}, "one of 'linf', 'l2'"),
        ({"random_start": "maybe"}, "true or false"),
        ({"scales": "1,x"}, "comma-separated list"),
    ],
)
def test_bad_values_name_plugin_key_and_accepted(given, fragment):
    with pytest.raises(OptionError) as err:
        resolve_options("attack 'pgd'", Opts, given)
    msg = str(err.value)
    assert msg.startswith("attack 'pgd': ") and fragment in msg


def test_parse_assignments():
    assert parse_assignments(["eps=2/255", "sga.steps = 3"], "--attack-opt") == {
        "eps": "2/255",
        "sga.steps": "3",
    }
    with pytest.raises(OptionError, match="--attack-opt expects KEY=VALUE"):
        parse_assignments(["eps"], "--attack-opt")

"""Typed plugin options: declared as dataclasses, parsed from CLI strings, TOML or Python values.

A plugin declares its options as a dataclass whose fields use :func:`option`::

    @dataclass
    class PGDOptions:
        eps: float = option(2 / 255, "L-inf radius in [0, 1] pixel space", min=0, max=1)
        norm: Literal["linf", "l2"] = option("linf", "norm of the ball")

Values given as strings are converted by the field's type (``float`` accepts ``2/255``; ``bool``
accepts true/false/yes/no/1/0; ``tuple[float, ...]`` accepts ``1,0.5,0.75``). Unknown keys and bad
values raise :class:`~vladv.errors.OptionError` naming the plugin, the key and what is accepted.

Limits that hold for every option, whatever its source (CLI, TOML, Python): integers fit in a
signed 64-bit integer (:data:`INT_MAX`), numbers are finite, and plugins cap iteration counts with
``max=MAX_STEPS`` (10,000 attack iterations) or ``max=MAX_TRAIN_STEPS`` (training steps).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Literal

from vladv.errors import OptionError

_MISSING = dataclasses.MISSING

INT_MAX = 2**63 - 1
"""Largest integer any option, seed or setting accepts (torch and JSON readers handle int64)."""
SEED_MAX = INT_MAX
MAX_STEPS = 10_000
"""Cap on an attack's (or inner attack's) iteration count."""
MAX_TRAIN_STEPS = 1_000_000
"""Cap on a training defense's optimizer steps."""


def option(
    default: Any,
    help: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
) -> Any:
    """Declare a plugin option with its default, a one-line help text and an optional range."""
    meta = {"help": help, "min": min, "max": max}
    if isinstance(default, list | dict | set):
        raise TypeError("option defaults must be immutable; use a tuple")
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a plugin that takes none."""


def parse_number(text: str) -> float:
    """Parse ``"2/255"``, ``"0.5"`` or ``"1e-3"`` into a float; raise ValueError otherwise."""
    text = text.strip()
    if "/" in text:
        num, _, den = text.partition("/")
        value = float(Fraction(num.strip())) / float(Fraction(den.strip()))
    else:
        value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _type_label(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_label(args[0]) + " or none"
    if origin in (tuple, list):
        return f"a comma-separated list of {_type_label(typing.get_args(tp)[0])}"
    return {
        float: "a number (e.g. 0.5 or 2/255)",
        int: "an integer",
        bool: "true or false",
        str: "a string",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(tp: Any, value: Any) -> Any:
    """Convert ``value`` (a string or a Python value) to type ``tp``; raise ValueError if
    impossible."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, str):
            value = value.strip()
        for choice in choices:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise ValueError(value)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (
            isinstance(value, str) and value.strip().lower() in ("none", "null", "")
        ):
            return None
        return _convert(args[0], value)
    if origin in (tuple, list):
        (inner, *_rest) = typing.get_args(tp)
        if isinstance(value, str):
            items = [v for v in value.split(",") if v.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            items = [value]
        return tuple(_convert(inner, v) for v in items)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "no", "0", "off"):
            return False
        raise ValueError(value)
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int | float):
            if not math.isfinite(float(value)):
                raise ValueError(value)
            return float(value)
        return parse_number(str(value))
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return int(str(value).strip())
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(value)
        return value
    raise TypeError(f"unsupported option type {tp!r}")


def option_fields(options_cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """The fields of an options dataclass with their resolved type hints."""
    hints = typing.get_type_hints(options_cls, include_extras=False)
    return [(f, hints[f.name]) for f in dataclasses.fields(options_cls)]


def resolve_options(label: str, options_cls: type, given: Mapping[str, Any] | None = None) -> Any:
    """Build an options instance from defaults overridden by ``given`` (strings or typed values).

    ``label`` names the plugin in error messages, e.g. ``"attack 'pgd'"``.
    """
    if given is not None and not isinstance(given, Mapping):
        raise OptionError(
            f"{label}: options must be a mapping of name to value; got {type(given).__name__}"
        )
    given = dict(given or {})
    fields = {f.name: (f, tp) for f, tp in option_fields(options_cls)}
    values: dict[str, Any] = {}
    for key, raw in given.items():
        if not isinstance(key, str):
            raise OptionError(f"{label}: option names must be strings; got {key!r:.60}")
        norm_key = key.replace("-", "_")
        if norm_key not in fields:
            accepted = ", ".join(fields) if fields else "no options"
            close = difflib.get_close_matches(norm_key, list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise OptionError(f"{label}: unknown option '{key}'{hint} (accepted: {accepted})")
        field, tp = fields[norm_key]
        try:
            value = _convert(tp, raw)
        except (ValueError, ZeroDivisionError, ArithmeticError):
            raise OptionError(
                f"{label}: option '{norm_key}' expects {_type_label(tp)}; got {raw!r}"
            ) from None
        _check_range(label, field, value)
        values[norm_key] = value
    try:
        return options_cls(**values)
    except (ValueError, TypeError) as exc:  # __post_init__ validation of the plugin
        raise OptionError(f"{label}: {exc}") from None


def _check_range(label: str, field: dataclasses.Field, value: Any) -> None:
    lo, hi = field.metadata.get("min"), field.metadata.get("max")
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if not isinstance(item, int | float) or isinstance(item, bool):
            continue
        if isinstance(item, int) and not -INT_MAX - 1 <= item <= INT_MAX:
            raise OptionError(
                f"{label}: option '{field.name}' must fit in a 64-bit integer; got {item}"
            )
        if (lo is not None and item < lo) or (hi is not None and item > hi):
            rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            got = item if isinstance(item, int) else f"{item:g}"
            raise OptionError(f"{label}: option '{field.name}' must lie in {rng}; got {got}")


def options_to_dict(options: Any) -> dict[str, Any]:
    """JSON-ready dict of an options instance (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def describe_options(options_cls: type) -> list[dict[str, Any]]:
    """One row per option: name, type, default, help, range (for `--help`, docs and listings)."""
    rows = []
    for f, tp in option_fields(options_cls):
        default = f.default if f.default is not _MISSING else None
        rows.append(
            {
                "name": f.name,
                "type": _type_label(tp),
                "default": list(default) if isinstance(default, tuple) else default,
                "help": f.metadata.get("help", ""),
                "min": f.metadata.get("min"),
                "max": f.metadata.get("max"),
            }
        )
    return rows


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` if it is an integer in [0, SEED_MAX]; an OptionError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise OptionError(f"{what} must be an integer; got {seed!r:.60}")
    if not 0 <= seed <= SEED_MAX:
        raise OptionError(f"{what} must lie in [0, 2**63-1]; got {seed}")
    return seed


def parse_assignments(pairs: list[str] | None, flag: str) -> dict[str, str]:
    """Parse repeated ``KEY=VALUE`` CLI strings; raise OptionError on a malformed one."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"{flag} expects KEY=VALUE; got {pair!r}")
        out[key.strip()] = value.strip()
    return out

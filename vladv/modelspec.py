"""Model specs: one string names a whole model, for the ``models`` and ``sources`` axes.

Grammar:
``BACKBONE[(KEY=VALUE, ...)][/DEFENSE[(KEY=VALUE, ...)][+AUGMENTER[(KEY=VALUE, ...)]...]]``::

    clip                                    the grid's clip, undefended
    clip(model=vladv-tiny-align)            another embedded model
    clip(pretrain_seed=1)/mat+eda           MAT with EDA on a CLIP-style model of another seed
    clip/tecoa(eps=4/255)

Inline options override the grid's ``[options.<kind>]`` for that plugin. ``self`` (sources only)
is the evaluated model itself: a white-box attack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vladv.errors import OptionError

SELF = "self"
_ITEM = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model spec: plugin names with their inline options."""

    backbone: str
    backbone_options: tuple[tuple[str, str], ...] = ()
    defense: str = "none"
    defense_options: tuple[tuple[str, str], ...] = ()
    augmenters: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


def _split_top(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside parentheses (``eps=2/255`` inside stays whole)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise OptionError(f"unbalanced ')' in model spec {text!r:.100}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise OptionError(f"unbalanced '(' in model spec {text!r:.100}")
    return [*parts, text[start:]]


def _item(text: str, entry: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    match = _ITEM.match(text)
    if not match:
        raise OptionError(
            f"bad model spec {entry!r:.100}; write BACKBONE[(KEY=VALUE, ...)]"
            f"[/DEFENSE[(KEY=VALUE, ...)][+AUGMENTER...]]"
        )
    name, body = match.group(1), match.group(2)
    options: dict[str, str] = {}
    for pair in _split_top(body, ",") if body and body.strip() else []:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise OptionError(
                f"model spec {entry!r:.100}: option {pair.strip()!r:.60} is not KEY=VALUE"
            )
        options[key.strip()] = value.strip()
    return name, tuple(options.items())


def parse_model(entry: str) -> ModelSpec:
    """Parse one model spec string (see the module docstring)."""
    if not isinstance(entry, str) or not entry.strip():
        raise OptionError(f"a model spec must be a non-empty string; got {entry!r:.60}")
    parts = _split_top(entry, "/")
    if len(parts) > 2:
        raise OptionError(f"model spec {entry!r:.100} has more than one '/' (BACKBONE/DEFENSE)")
    backbone, bopts = _item(parts[0], entry)
    if len(parts) == 1:
        return ModelSpec(backbone, bopts)
    defense, *augs = (_item(p, entry) for p in _split_top(parts[1], "+"))
    if defense[0] == "none" and augs:
        raise OptionError(f"model spec {entry!r:.100}: augmenters need a training defense")
    return ModelSpec(backbone, bopts, defense[0], defense[1], tuple(augs))

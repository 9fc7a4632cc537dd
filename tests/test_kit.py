"""The plugin author's kit (vladv.kit) and the rule that plugins reach each other only through it.

* No module under plugins/ imports another first-party plugin's module (AST check): a plugin
  reaches another through the registry (``vladv.get_registry().get(kind, name)``) or the kit.
  A plugin's private helper modules, listed in :data:`HELPERS`, are the only exception, and a
  helper never imports the plugin that owns it (no import loop).
* Every public name of the kit imports and is documented: a docstring of its own for functions
  and classes, an attribute docstring (a string right after the assignment) for constants and
  type aliases; docs/kit.md names every module and every name ``vladv.kit`` exports.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
PACKAGE = "vladv_plugins"

# Private helper modules (top-level name under plugins/) → the plugin module that owns them. A
# module may import its own package's modules and the helpers of the plugin it belongs to.
HELPERS: dict[str, str] = {
    "aerial": "synthetic",  # the synthetic world's generator (a subpackage)
    "captioning_model": "captioning",  # the embedded captioner's network and training
    "clip_pretrain": "clip",  # the embedded CLIP's config, pretraining, evaluation
    "clip_backbone": "clip",  # ClipBackbone, shared by clip and clip_pretrain
    "hf_preprocess": "hf",  # the hf backbone's pixel preprocessing (PIL filters)
}
# Modules under plugins/ that are no plugin and must import no plugin module either.
SHIMS = {"mlm"}  # re-exports vladv.kit.mlm for code written before the kit


def _top(path: Path) -> str:
    """The top-level module name under plugins/ of ``path`` (``aerial`` for aerial/world.py)."""
    return path.relative_to(PLUGINS).parts[0].removesuffix(".py")


def _imported_plugin_modules(path: Path, root: Path = PLUGINS) -> list[tuple[int, str]]:
    """(line, top-level module under vladv_plugins) of every import of a first-party module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = [PACKAGE, *path.relative_to(root).parts[:-1]]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    found.append((node.lineno, parts[1]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package[: len(package) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
            else:
                parts = (node.module or "").split(".")
            if parts[0] != PACKAGE:
                continue
            if len(parts) > 1:
                found.append((node.lineno, parts[1]))
            else:  # from vladv_plugins import x, y
                found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.Call) and node.args:  # importlib.import_module("vladv_plugins.x")
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            arg = node.args[0]
            if (
                name in ("import_module", "__import__")
                and isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and arg.value.startswith(f"{PACKAGE}.")
            ):
                found.append((node.lineno, arg.value.split(".")[1]))
    return found


def _plugin_files() -> list[Path]:
    return sorted(p for p in PLUGINS.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_allow_list_names_real_helpers_of_real_plugins():
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
        "vladv"
    ]
    plugin_modules = {v.removeprefix(f"{PACKAGE}.") for v in entry_points.values()}
    tops = {_top(p) for p in _plugin_files()}
    for helper, owner in HELPERS.items():
        assert helper in tops and helper not in plugin_modules, helper
        assert owner in plugin_modules, f"{helper}: owner {owner} is no entry-point plugin"
    assert not SHIMS & plugin_modules and SHIMS <= tops


@pytest.mark.parametrize("path", _plugin_files(), ids=lambda p: str(p.relative_to(PLUGINS)))
def test_plugins_import_no_other_plugin_module(path):
    me = _top(path)
    owner = HELPERS.get(me, me)
    bad = []
    for line, target in _imported_plugin_modules(path):
        allowed = me not in SHIMS and (target == me or HELPERS.get(target) == owner)
        if not allowed:
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {PACKAGE}.{target}")
    assert not bad, (
        "a plugin reaches another plugin only through the registry or vladv.kit "
        "(docs/kit.md); private helpers are listed in tests/test_kit.py HELPERS: " + "; ".join(bad)
    )


def test_the_import_check_sees_every_import_form(tmp_path):
    fake = tmp_path / "plugins"
    (fake / "sub").mkdir(parents=True)
    (fake / "mod.py").write_text(
        "import vladv_plugins.pgd\nfrom vladv_plugins.mlm import get_mlm\n"
        "from vladv_plugins import eda, sga\nfrom . import hf\nfrom .aerial.world import X\n"
        "import vladv.kit\ndef f():\n    from vladv_plugins.clip import ClipBackbone\n"
        "    importlib.import_module('vladv_plugins.karpathy')\n"
    )
    (fake / "sub" / "inner.py").write_text("from .. import clip\nfrom . import other\n")
    assert [t for _, t in _imported_plugin_modules(fake / "mod.py", fake)] == [
        "pgd",
        "mlm",
        "eda",
        "sga",
        "hf",
        "aerial",
        "clip",
        "karpathy",
    ]
    assert [t for _, t in _imported_plugin_modules(fake / "sub" / "inner.py", fake)] == [
        "clip",
        "sub",
    ]


# ----------------------------------------------------------------------------------------------
# The kit's public names
# ----------------------------------------------------------------------------------------------
def _kit_modules() -> list[str]:
    import vladv.kit

    return list(vladv.kit.MODULES)


def _attribute_docstrings(module) -> dict[str, str]:
    """Module-level ``NAME = ...`` followed by a string literal: {NAME: docstring}."""
    tree = ast.parse(inspect.getsource(module))
    out = {}
    for node, nxt in zip(tree.body, tree.body[1:]):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        if (
            isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = nxt.value.value
    return out


@pytest.mark.parametrize("name", _kit_modules())
def test_kit_public_names_import_and_are_documented(name):
    module = importlib.import_module(f"vladv.kit.{name}")
    assert (module.__doc__ or "").strip(), f"vladv.kit.{name} has no module docstring"
    attribute_docs = _attribute_docstrings(module)
    assert module.__all__, name
    undocumented = []
    for public in module.__all__:
        obj = getattr(module, public)  # importable
        if public in attribute_docs:
            continue
        if inspect.isclass(obj):
            doc = obj.__dict__.get("__doc__") or ""
            if doc.startswith(f"{obj.__name__}("):  # the signature a dataclass writes
                doc = ""
        elif inspect.isfunction(obj) or inspect.isbuiltin(obj):
            doc = obj.__doc__ or ""
        else:
            doc = ""  # a constant or alias needs an attribute docstring
        if not doc.strip():
            undocumented.append(public)
    assert not undocumented, f"vladv.kit.{name}: undocumented public names {undocumented}"


def test_kit_package_exports_and_the_guide():
    import vladv.kit

    text = (ROOT / "docs" / "kit.md").read_text()
    for name in vladv.kit.__all__:
        getattr(vladv.kit, name)
        if name != "MODULES":
            assert f"{name}" in text, f"docs/kit.md does not mention {name}"
    for name in vladv.kit.MODULES:
        assert f"vladv.kit.{name}" in text, f"docs/kit.md does not cover vladv.kit.{name}"


# ----------------------------------------------------------------------------------------------
# docs/kit.md's two example attacks, as printed, run against the tiny world
# ----------------------------------------------------------------------------------------------
def _kit_md_plugin(marker: str, monkeypatch) -> dict:
    """The docs/kit.md code block containing ``marker``, run as a module (as a plugin file is)."""
    import re
    import sys
    import types

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "kit.md").read_text(), re.S)
    [code] = [b for b in blocks if marker in b]
    module = types.ModuleType(f"kit_md_{marker.split()[-1].lower()}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, f"docs/kit.md ({marker})", "exec"), module.__dict__)  # noqa: S102
    return module.__dict__


def _tiny_batch():
    from vladv.data import pair_loader
    from vladv.testing import TinyBackbone, tiny_dataset

    return TinyBackbone().eval(), next(iter(pair_loader(tiny_dataset(3, captions_per_image=2), 3)))


def test_kit_md_image_attack_example_runs(monkeypatch):
    import torch

    import vladv

    ns = _kit_md_plugin("class Drift", monkeypatch)
    backbone, batch = _tiny_batch()
    [spec] = list(ns["vladv_attacks"]())
    attack = spec.factory(ns["DriftOptions"](eps=0.5, steps=3), vladv.Context())
    out = attack.perturb(backbone, batch, torch.Generator().manual_seed(0))
    delta = (out.images - batch.images).flatten(1).norm(dim=1)
    assert float(delta.max()) <= 0.5 + 1e-5 and float(delta.max()) > 0
    assert out.texts == list(batch.texts)


def test_kit_md_text_attack_example_runs(tiny_mlm, monkeypatch):
    import torch

    import vladv

    ns = _kit_md_plugin("class Swap", monkeypatch)
    backbone, batch = _tiny_batch()
    [spec] = list(ns["vladv_attacks"]())
    attack = spec.factory(ns["SwapOptions"](mlm=tiny_mlm, max_words=1), vladv.Context())
    out = attack.perturb(backbone, batch, torch.Generator().manual_seed(0))
    assert len(out.texts) == len(batch.texts) and torch.equal(out.images, batch.images)
    for clean, adv in zip(batch.texts, out.texts, strict=True):
        assert sum(a != b for a, b in zip(clean.split(), adv.split(), strict=True)) <= 1

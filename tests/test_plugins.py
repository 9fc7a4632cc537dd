import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from plugin_factory import BROKEN_MODULE, FOO_MODULE, write_distribution

import vladv
from vladv import hookspecs
from vladv.errors import PluginError, UnknownPluginError
from vladv.experiment import run
from vladv.plugins import PluginRegistry, get_registry
from vladv.testing import isolated_registry, registered_plugin

FIRST_PARTY = {
    ("backbone", "clip"),
    ("backbone", "hf"),
    ("dataset", "synthetic-aerial"),
    ("dataset", "karpathy"),
    ("attack", "pgd"),
    ("attack", "bert-attack"),
    ("attack", "sga"),
    ("attack", "co-attack"),
    ("defense", "mat"),
    ("defense", "tecoa"),
    ("defense", "fare"),
    ("augmenter", "eda"),
    ("augmenter", "image-aug"),
    ("augmenter", "caption"),
}


def _spec(name, kind="attack"):
    @dataclass(frozen=True)
    class Opts:
        pass

    cls = {"attack": vladv.AttackSpec, "defense": vladv.DefenseSpec}[kind]
    return cls(name=name, summary=f"{name} summary", factory=lambda o, ctx: None, options=Opts)


class _Plugin:
    def __init__(self, *names):
        self.names = names

    @vladv.hookimpl
    def vladv_attacks(self):
        return [_spec(n) for n in self.names]


def test_first_party_plugins_load_through_entry_points():
    registry = get_registry()
    for kind, name in FIRST_PARTY:
        entry = registry.specs(kind)[name]
        assert entry.plugin.distribution == "vladv" and entry.plugin.version == vladv.__version__
    assert not registry.broken()


def test_inline_registration_and_unknown_name_suggestion():
    with registered_plugin(_Plugin("tga-like", "tga")):
        assert get_registry().get("attack", "tga").name == "tga"
        with pytest.raises(UnknownPluginError, match="unknown attack 'tgaa'; did you mean 'tga'"):
            get_registry().get("attack", "tgaa")
    assert "tga" not in get_registry().specs("attack")


def test_conflicting_names_name_both_plugins():
    registry = PluginRegistry()
    registry.register(_Plugin("dup"), name="first", distribution="vladv-a")
    registry.register(_Plugin("dup", "other"), name="second", distribution="vladv-b")
    with pytest.raises(
        PluginError, match=r"provided by both first \(vladv-a\) and second \(vladv-b\)"
    ):
        registry.get("attack", "dup")
    assert registry.get("attack", "other").name == "other"  # the rest keeps working


def test_invalid_records_make_only_that_plugin_broken():
    class Bad:
        @vladv.hookimpl
        def vladv_attacks(self):
            return ["not a spec"]

    registry = PluginRegistry()
    registry.register(_Plugin("good"), name="good")
    registry.register(Bad(), name="bad")
    assert set(registry.specs("attack")) == {"good"}
    [broken] = registry.broken()
    assert broken.name == "bad" and "expected AttackSpec" in broken.error


@pytest.mark.parametrize("name", ["Bad", "has space", "", "1abc", "x" + "!"])
def test_spec_names_are_validated(name):
    with pytest.raises(ValueError, match="invalid attack name"):
        _spec(name)


def test_every_hook_is_documented():
    docs = os.path.join(os.path.dirname(__file__), "..", "docs", "plugins.md")
    text = open(docs).read()
    for hook in hookspecs.HOOKS.values():
        func = getattr(hookspecs, hook)
        assert func.__doc__ and len(func.__doc__.strip()) > 40, hook
        assert f"## `{hook}()`" in text, f"docs/plugins.md lacks a section for {hook}"


def _cli(args, site, **env):
    full_env = {**os.environ, "PYTHONPATH": str(site), **env}
    return subprocess.run(
        [sys.executable, "-m", "vladv", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    write_distribution(site, "vladv-foo", "vladv_foo", FOO_MODULE, entry_name="foo")
    write_distribution(site, "vladv-broken", "vladv_broken", BROKEN_MODULE, entry_name="broken")
    return site


def test_third_party_distribution_is_listed_and_broken_one_reported(site):
    res = _cli(["plugins", "--json"], site)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    foo = [p for p in data["plugins"] if p["name"] == "foo-fgsm"]
    assert foo and foo[0]["distribution"] == "vladv-foo" and foo[0]["version"] == "0.1.0"
    assert any(p["name"] == "clip" for p in data["plugins"])  # first-party still there
    [broken] = data["broken"]
    assert broken["distribution"] == "vladv-broken" and "broken on purpose" in broken["error"]
    table = _cli(["plugins"], site)
    assert table.returncode == 0 and "foo-fgsm" in table.stdout and "broken" in table.stdout


def test_third_party_attack_runs_from_the_cli(site, tmp_path):
    res = _cli(
        [
            "run",
            "--backbone",
            "tiny",
            "--dataset",
            "tiny",
            "--attack",
            "foo-fgsm",
            "--attack-opt",
            "eps=8/255",
            "--output",
            str(tmp_path),
            "--quiet",
            "--json",
        ],
        site,
        VLADV_HOME=str(tmp_path / "home"),
    )
    assert res.returncode == 0, res.stderr
    [rec] = json.loads(res.stdout)
    assert rec["versions"]["plugins"]["attack"]["distribution"] == "vladv-foo"
    assert rec["metrics"]["budget"]["max_linf"] <= 8 / 255 + 1e-6
    assert rec["config"]["attack"]["threat_model"]["eps"] == pytest.approx(8 / 255)
    assert rec["metrics"]["adversarial"]["tr_r1"] <= rec["metrics"]["clean"]["tr_r1"]


def test_disable_and_load_filters(site):
    res = _cli(["plugins", "--json"], site, VLADV_DISABLE_PLUGINS="vladv-broken,karpathy")
    data = json.loads(res.stdout)
    names = {p["name"] for p in data["plugins"]}
    assert not data["broken"] and "karpathy" not in names and "foo-fgsm" in names
    res = _cli(["plugins", "--json"], site, VLADV_LOAD_PLUGINS="")
    data = json.loads(res.stdout)
    names = {p["name"] for p in data["plugins"]}
    assert "foo-fgsm" not in names and "clip" in names and not data["broken"]
    res = _cli(["plugins", "--json"], site, VLADV_LOAD_PLUGINS="foo")
    names = {p["name"] for p in json.loads(res.stdout)["plugins"]}
    assert "foo-fgsm" in names


def test_every_prepare_hook_takes_force():
    import inspect

    registry = get_registry()
    for kind in ("backbone", "dataset", "attack", "defense", "augmenter"):
        for name, entry in registry.specs(kind).items():
            if entry.spec.prepare is not None:
                params = inspect.signature(entry.spec.prepare).parameters
                assert "force" in params, f"{kind} {name}: prepare() must accept force="


def test_registered_plugin_accepts_a_plugin_installed_through_its_entry_point(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("vladv_foo", None)
    try:
        with isolated_registry() as registry:
            import vladv_foo

            assert registry.name_of(vladv_foo) == "foo"  # loaded through its entry point
            with registered_plugin(vladv_foo):
                [rec] = run(
                    output=False, backbone="tiny", dataset="tiny", attack="foo-fgsm", progress=False
                )
            assert rec["versions"]["plugins"]["attack"]["distribution"] == "vladv-foo"
            assert registry.name_of(vladv_foo) == "foo"
            assert registry.plugins["foo"].status == "ok"
        assert get_registry() is not registry and get_registry().name_of(vladv_foo) is None
        with isolated_registry(load_entry_points=False), registered_plugin(vladv_foo):
            [again] = run(
                output=False, backbone="tiny", dataset="tiny", attack="foo-fgsm", progress=False
            )
        assert again["metrics"] == rec["metrics"]  # not installed: the same result
    finally:
        sys.modules.pop("vladv_foo", None)


MISSPELT = """
import vladv


@vladv.hookimpl
def vladv_attack():
    return []


def vladv_defenses():
    return []
"""


def test_misspelt_or_unmarked_hooks_make_a_plugin_broken(tmp_path):
    path = tmp_path / "misspelt.py"
    path.write_text(MISSPELT)
    with pytest.raises(
        PluginError,
        match=r"vladv_attack is not a vladv hook \(did you mean "
        r"vladv_attacks\?\); vladv_defenses is not marked",
    ):
        get_registry().register_file(path)
    site = tmp_path / "site"
    write_distribution(site, "vladv-misspelt", "vladv_misspelt", MISSPELT, entry_name="misspelt")
    res = _cli(["plugins", "--json"], site)
    [broken] = json.loads(res.stdout)["broken"]
    assert (
        broken["distribution"] == "vladv-misspelt"
        and "did you mean vladv_attacks" in broken["error"]
    )


def test_import_vladv_exposes_what_the_docs_use():
    import importlib

    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "import vladv; vladv.plugins.get_registry(); "
            "vladv.get_registry(); vladv.backbone.Backbone; vladv.Backbone; "
            "vladv.testing.registered_plugin",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert vladv.get_registry is importlib.import_module("vladv.plugins").get_registry

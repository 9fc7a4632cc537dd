import importlib.util
import re
import sys
from pathlib import Path

from plugin_factory import install_package, plugin_listing

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_matches_help():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "docs" / "cli.md").read_text() == gen.render(), (
        "docs/cli.md is stale: run `python docs/gen_cli.py > docs/cli.md`"
    )


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    main = text.index("<!-- main-command -->")
    test = text.index("<!-- test-command -->")
    assert main < test < text.index("## ")
    assert (
        "vladv run" in text[main:test]
        and "pytest" in text[test : text.index("<!-- /test-command -->")]
    )


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    return {
        _slug(line.lstrip("#")) for line in doc.read_text().splitlines() if line.startswith("#")
    }


def test_doc_links_and_algorithm_citations_resolve():
    """Every `name.md#anchor` in docs, README, code and tests names a heading of docs/name.md."""
    files = [
        ROOT / "README.md",
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "vladv").glob("*.py"),
        *(ROOT / "plugins").rglob("*.py"),
        *(ROOT / "tests").glob("*.py"),
    ]
    missing = "ALGORITHMS" + ".md"  # the retired file: cite docs/algorithms.md
    for path in files:
        text = path.read_text()
        assert missing not in text, f"{path.name} cites {missing}"
        for doc, anchor in re.findall(r"\b([a-z][\w-]*)\.md#([\w-]+)", text):
            target = ROOT / "docs" / f"{doc}.md"
            if target.exists():
                assert anchor in _anchors(target), f"{path.name}: {doc}.md#{anchor} has no heading"


def test_hook_reference_names_every_field_and_argument():
    """docs/hooks.md names every field of the records and every argument of the trainer API."""
    import dataclasses
    import inspect

    import vladv
    from vladv import hookspecs, testing, training
    from vladv.backbone import Backbone

    text = (ROOT / "docs" / "hooks.md").read_text()
    names = {f"{h}()" for h in hookspecs.HOOKS.values()}
    for cls in (
        vladv.AttackSpec,
        vladv.AugmenterSpec,
        vladv.Context,
        vladv.PairBatch,
        vladv.ThreatModel,
        vladv.AttackOutput,
        training.TrainingOptions,
        training.TrainBatch,
        testing.NoiseAttackOptions,
    ):
        names |= {f.name for f in dataclasses.fields(cls)}
    names |= set(Backbone.__abstractmethods__)
    for func in (
        training.train,
        training.PairSampler,
        training.contrastive_loss,
        training.step_generator,
        testing.registered_plugin,
        testing.isolated_registry,
    ):
        names |= set(inspect.signature(func).parameters) - {"self", "salt"}
    undocumented = sorted(
        n
        for n in names
        if not any(form.format(n) in text for form in ("`{}`", "{}(", " {},", "({},", "{}="))
    )
    assert not undocumented, f"docs/hooks.md does not mention {undocumented}"


def test_plugins_md_example_plugin_and_its_test_run(tmp_path, monkeypatch):
    """docs/plugins.md's vladv_foo.py and its test, as printed, run against the tiny world."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "plugins.md").read_text(), re.S)
    [module] = [b for b in blocks if b.startswith("# vladv_foo.py")]
    [test] = [b for b in blocks if "def test_fgsm_lowers_recall" in b]
    (tmp_path / "vladv_foo.py").write_text(module)
    (tmp_path / "test_foo.py").write_text(test)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VLADV_HOME", str(tmp_path / "home"))
    namespace: dict = {}
    try:
        exec(compile(test, "test_foo.py", "exec"), namespace)
        namespace["test_fgsm_lowers_recall"]()
    finally:
        sys.modules.pop("vladv_foo", None)  # test_plugins installs another vladv_foo


def test_plugins_md_package_installs_is_listed_and_its_test_passes(tmp_path):
    """The walk-through of docs/plugins.md followed literally as a package: vladv_foo.py, the
    pyproject.toml and the test as printed; pip-installed, listed by `vladv plugins`, its test
    passing against the installed entry point."""
    import os
    import subprocess

    text = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    [module] = [b for lang, b in blocks if lang == "python" and b.startswith("# vladv_foo.py")]
    [pyproject] = [b for lang, b in blocks if lang == "toml" and "vladv-foo" in b]
    [test] = [b for lang, b in blocks if "def test_fgsm_lowers_recall" in b]
    package, site = tmp_path / "vladv-foo", tmp_path / "site"
    (package / "tests").mkdir(parents=True)
    (package / "vladv_foo.py").write_text(module)
    (package / "pyproject.toml").write_text(pyproject)
    (package / "tests" / "test_foo.py").write_text(test)
    install_package(package, site)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "VLADV_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
    }
    data = plugin_listing(env)
    [row] = [p for p in data["plugins"] if p["name"] == "fgsm"]
    assert row["distribution"] == "vladv-foo" and not data["broken"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]

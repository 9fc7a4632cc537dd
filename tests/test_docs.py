import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_matches_help():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "docs" / "cli.md").read_text() == gen.render(), \
        "docs/cli.md is stale: run `python docs/gen_cli.py > docs/cli.md`"


def test_readme_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    main = text.index("<!-- main-command -->")
    test = text.index("<!-- test-command -->")
    assert main < test < text.index("## ")
    assert "vladv run" in text[main:test] and "pytest" in text[test:text.index("<!-- /test-command -->")]


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in doc.read_text().splitlines()
            if line.startswith("#")}


def test_doc_links_and_algorithm_citations_resolve():
    """Every `name.md#anchor` in docs, README, code and tests names a heading of docs/name.md."""
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "vladv").glob("*.py"),
             *(ROOT / "plugins").rglob("*.py"), *(ROOT / "tests").glob("*.py")]
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
    for cls in (vladv.AttackSpec, vladv.AugmenterSpec, vladv.Context, vladv.PairBatch,
                vladv.ThreatModel, vladv.AttackOutput, training.TrainingOptions,
                training.TrainBatch, testing.NoiseAttackOptions):
        names |= {f.name for f in dataclasses.fields(cls)}
    names |= set(Backbone.__abstractmethods__)
    for func in (training.train, training.PairSampler, training.contrastive_loss,
                 training.step_generator, testing.registered_plugin, testing.isolated_registry):
        names |= set(inspect.signature(func).parameters) - {"self", "salt"}
    undocumented = sorted(n for n in names if not any(
        form.format(n) in text for form in ("`{}`", "{}(", " {},", "({},", "{}=")))
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

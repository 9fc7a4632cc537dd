import importlib.util
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

"""The distribution ships every package and the data files the code reads (a wheel, not only an
editable install)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed():
    listed = set(_setuptools()["packages"])
    found = set()
    for top, name in (("vladv", "vladv"), ("plugins", "vladv_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *rel)))
    assert found == listed


def test_data_files_the_code_reads_are_package_data():
    data = _setuptools().get("package-data", {})
    for path in (ROOT / "vladv").rglob("data/*.json"):
        package = ".".join(path.parent.parent.relative_to(ROOT).parts)
        assert package in data and any(path.match(f"*/{p}") for p in data[package]), path


def test_prebuilt_models_are_package_data():
    patterns = _setuptools().get("package-data", {}).get("vladv", [])
    shipped = [p for p in (ROOT / "vladv" / "prebuilt").rglob("*") if p.is_file()]
    assert shipped, "vladv/prebuilt is empty"
    for path in shipped:
        rel = path.relative_to(ROOT / "vladv")
        assert any(rel.match(p) for p in patterns), rel

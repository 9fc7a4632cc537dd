"""``vladv new-plugin``: every kind scaffolds a package whose own test passes, installed or not."""

import os
import subprocess
import sys

import pytest
from plugin_factory import install_package, plugin_listing
from typer.testing import CliRunner

from vladv.cli import app
from vladv.scaffold import KINDS


def _pytest(package, **env):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_scaffolds_a_package_whose_test_passes(kind, tmp_path):
    res = CliRunner().invoke(
        app,
        ["new-plugin", f"my-{kind}", "--kind", kind, "--dir", str(tmp_path)],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    package = tmp_path / f"vladv-my-{kind}"
    assert f'my-{kind} = "vladv_my_{kind}"' in (package / "pyproject.toml").read_text()
    run = _pytest(package)  # not installed: pyproject's pythonpath finds the module
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout


def test_installed_scaffold_is_listed_and_its_test_still_passes(tmp_path):
    res = CliRunner().invoke(app, ["new-plugin", "my-fgsm", "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    package, site = tmp_path / "vladv-my-fgsm", tmp_path / "site"
    install_package(package, site)
    env = {
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "VLADV_HOME": str(tmp_path / "home"),
    }  # the vladv under test, plus the package
    data = plugin_listing({**os.environ, **env})
    [row] = [p for p in data["plugins"] if p["name"] == "my-fgsm"]
    assert row["distribution"] == "vladv-my-fgsm" and not data["broken"]
    # the entry point registers the module before the test's registered_plugin(module) does
    run = _pytest(package, **env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


def test_new_plugin_refuses_bad_names_kinds_taken_names_and_full_folders(tmp_path):
    def cli(*args):
        return CliRunner().invoke(app, ["new-plugin", *args, "--dir", str(tmp_path)])

    assert cli("pgd", "--kind", "attack").exit_code == 2  # first-party attack name
    assert cli("My_x").exit_code == 2
    assert cli("ok-name", "--kind", "attak").exit_code == 2
    assert cli("ok-name").exit_code == 0
    res = cli("ok-name")
    assert res.exit_code == 2 and "not empty" in res.output

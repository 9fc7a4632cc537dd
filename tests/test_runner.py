"""One way through: ``vladv run`` and ``vladv.run`` are one runner with one set of defaults; a
grid is built once and every plugin looked up once per run."""

import inspect
import json
from collections import Counter

import pytest
from typer.testing import CliRunner

import vladv
from vladv import experiment, grid
from vladv.cli import app
from vladv.plugins import get_registry
from vladv.results import SCHEMA_VERSION
from vladv.testing import noise_plugin, registered_plugin

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def noise(tiny):
    with registered_plugin(noise_plugin) as registry:
        yield registry


def test_vladv_run_is_the_runner_with_an_explicit_signature():
    assert vladv.run is experiment.run
    params = inspect.signature(vladv.run).parameters.values()
    assert not [p for p in params if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def test_cli_passes_the_api_defaults(monkeypatch, tmp_path):
    """`vladv run` without flags calls the runner exactly as `vladv.run()` with no arguments
    would (the console aside): no default of its own for output, seeds, progress, ..."""
    seen = {}
    defaults = {n: p.default for n, p in inspect.signature(experiment.run).parameters.items()}

    def fake_run(**kwargs):
        seen.update(kwargs)
        raise vladv.errors.VladvError("stop here")

    monkeypatch.setattr(experiment, "run", fake_run)
    res = invoke("run")
    assert res.exit_code == 2 and "stop here" in res.output
    seen.pop("console")
    assert seen == {
        k: v if v is not None or not k.endswith("_options") else {}
        for k, v in defaults.items()
        if k != "console"
    }


def test_cli_and_api_write_the_same_records_to_the_same_default_folder(
    noise, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    res = invoke(
        "run",
        "--backbone",
        "tiny",
        "--dataset",
        "tiny",
        "--attack",
        "noise",
        "--seed",
        "3",
        "-q",
        "--json",
    )
    assert res.exit_code == 0, res.output
    cli_records = json.loads(res.stdout[res.stdout.index("[") :])
    [folder] = (tmp_path / "runs").iterdir()
    planned = vladv.run(
        backbone="tiny", dataset="tiny", attack="noise", seed=3, dry_run=True, progress=False
    )
    assert [c["done"] for c in planned] == [True]  # the API looks in the same folder ...
    api_records = vladv.run(backbone="tiny", dataset="tiny", attack="noise", seed=3, progress=False)
    assert api_records == cli_records  # ... and reads back what the CLI wrote
    assert list((tmp_path / "runs").iterdir()) == [folder]
    spec = grid.GridSpec(backbones=("tiny",), datasets=("tiny",), attacks=("noise",), seeds=(3,))
    assert folder.name == experiment.default_output(spec).name


def test_api_output_false_writes_nothing(noise, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    [rec] = vladv.run(backbone="tiny", dataset="tiny", attack="noise", progress=False, output=False)
    assert rec["metrics"]["adversarial"] is not None
    assert list(tmp_path.iterdir()) == []


def test_one_grid_and_one_lookup_per_plugin_per_run(noise, tmp_path, monkeypatch):
    """A grid with a defense, sweeps and two seeds, through the CLI and an experiment file: the
    file is read once, the grid expanded once, each plugin looked up once, the hooks called once."""
    config = tmp_path / "grid.toml"
    config.write_text(
        '[experiment]\nbackbones = ["tiny"]\ndatasets = ["tiny"]\n'
        'defenses = ["none", "tecoa"]\nattacks = ["none", "noise"]\nseeds = [0, 1]\n'
        '[options.attack]\n"noise.eps" = ["2/255", "4/255"]\n'
        '[options.defense]\n"tecoa.steps" = 2\n"tecoa.batch_size" = 4\n'
        '"tecoa.pgd_steps" = 1\n'
    )
    registry = get_registry()
    registry.specs("backbone")  # hooks already collected by the fixtures' registrations
    lookups, calls = Counter(), Counter()
    get, collect = registry.get, registry._collect

    def counted_get(kind, name):
        lookups[(kind, name)] += 1
        return get(kind, name)

    def counted_collect():
        calls["hooks"] += 1
        return collect()

    def count(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    monkeypatch.setattr(registry, "get", counted_get)
    monkeypatch.setattr(registry, "_collect", counted_collect)
    count(grid, "load_experiment_file")
    count(experiment, "load_experiment_file")
    count(experiment, "expand")
    count(experiment, "build_grid")
    res = invoke("run", "-c", str(config), "--output", str(tmp_path / "out"), "-q", "--json")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout[res.stdout.index("[") :])) == 2 * 2 * (1 + 2)
    assert calls == Counter({"load_experiment_file": 1, "expand": 1, "build_grid": 1})
    assert set(lookups) == {
        ("backbone", "tiny"),
        ("dataset", "tiny"),
        ("defense", "tecoa"),
        ("attack", "noise"),
    }
    assert set(lookups.values()) == {1}, lookups


def test_records_name_the_evaluated_weights_and_where_they_ran(tiny):
    """``model.parameters_sha256`` identifies the weights bit for bit; ``config.runtime`` names the
    thread count and the CPU, on which float results depend."""
    import torch

    [a] = vladv.run(output=False, backbone="tiny", dataset="tiny", progress=False)
    [b] = vladv.run(output=False, backbone="tiny", dataset="tiny", progress=False)
    [c] = vladv.run(
        output=False, backbone="tiny", dataset="tiny", backbone_options={"seed": 1}, progress=False
    )
    digest = a["model"]["parameters_sha256"]
    assert len(digest) == 16 and digest == b["model"]["parameters_sha256"]
    assert c["model"]["parameters_sha256"] != digest  # other weights, other hash
    runtime = a["config"]["runtime"]
    assert runtime["threads"] == torch.get_num_threads() and runtime["cpu"]
    assert a["run_id"] == b["run_id"] and a["schema_version"] == SCHEMA_VERSION


def test_every_schema_version_is_in_the_documented_change_log():
    from pathlib import Path

    from vladv.results import SCHEMA_CHANGES

    doc = (Path(__file__).resolve().parent.parent / "docs" / "results-schema.md").read_text()
    assert max(SCHEMA_CHANGES) == SCHEMA_VERSION
    for version in SCHEMA_CHANGES:
        assert f"- **{version}** —" in doc, f"schema {version} missing from results-schema.md"


def test_records_name_the_commit_of_the_code_the_process_loaded(monkeypatch):
    """The checkout can move on while a long run (a grid) lasts; its records keep the commit read
    at import, the code the process runs."""
    import subprocess

    from vladv import results

    loaded = results.package_versions()["vladv_commit"]

    def moved_on(*args, **kwargs):
        return subprocess.CompletedProcess(args, 0, stdout="0123456789ab\n", stderr="")

    monkeypatch.setattr(results.subprocess, "run", moved_on)
    assert results.package_versions()["vladv_commit"] == loaded
    results._git_commit.cache_clear()  # what a fresh process reads
    try:
        assert results.package_versions()["vladv_commit"] == (
            "0123456789ab"
            if (results.Path(results.__file__).parent.parent / ".git").exists()
            else None
        )
    finally:
        results._git_commit.cache_clear()
        monkeypatch.undo()
        results._git_commit()

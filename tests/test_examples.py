"""The shipped examples: the installable third-party plugin package, scripts, experiment files."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from plugin_factory import install_package, plugin_listing

import vladv
from vladv.experiment import run
from vladv.testing import isolated_registry, registered_plugin, tiny_plugin

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    install_package(ROOT / "examples" / "vladv-example-plugin", target)
    return target


def test_example_plugin_package_installs_and_runs(installed_example, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed_example), "VLADV_HOME": str(tmp_path)}
    fgsm = [p for p in plugin_listing(env)["plugins"] if p["name"] == "fgsm"]
    assert fgsm and fgsm[0]["distribution"] == "vladv-example-plugin"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "vladv",
            "run",
            "--plugin",
            str(ROOT / "tests" / "tiny_world.py"),
            "--backbone",
            "tiny",
            "--dataset",
            "tiny",
            "--attack",
            "fgsm",
            "--attack-opt",
            "eps=4/255",
            "--output",
            str(tmp_path / "out"),
            "-q",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    [rec] = json.loads(res.stdout[res.stdout.index("[") :])
    assert rec["metrics"]["budget"]["max_linf"] == pytest.approx(4 / 255, abs=1e-6)
    assert rec["versions"]["plugins"]["attack"]["distribution"] == "vladv-example-plugin"


TEXT_ATTACKS = {"sga", "co-attack", "bert-attack"}


def _tiny_run(real, mlm):
    """vladv.run with the example's grid kept but models, data and steps made tiny."""

    def names(value):
        return {value} if isinstance(value, str) else set(value or ())

    def run_tiny(**kw):
        kw["attack_options"] = {
            **(kw.get("attack_options") or {}),
            "steps": "2",
            **({"mlm": mlm} if TEXT_ATTACKS & names(kw.get("attack")) else {}),
        }
        defenses = names(kw.get("defense"))
        if defenses - {"none"}:  # MAT's inner text attack gets the tiny MLM too (no pretraining)
            kw["defense_options"] = {
                "steps": "2",
                "batch_size": "4",
                **({"mlm": mlm} if "mat" in defenses else {}),
            }
        kw.update(
            backbone="tiny",
            dataset="tiny",
            progress=False,
            dataset_options={"n_images": 4, "captions_per_image": 2},
        )
        return real(**kw)

    return run_tiny


@pytest.mark.parametrize("script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name)
def test_example_scripts_run(script, tiny_mlm, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # the scripts write runs/... under the working directory
    monkeypatch.setenv("VLADV_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(vladv, "run", _tiny_run(vladv.run, tiny_mlm))
    with isolated_registry(), registered_plugin(tiny_plugin):  # what a script registers goes
        runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert "TR@1" in out and (tmp_path / "runs").is_dir()
    for record in (tmp_path / "runs").glob("*/*.json"):
        json.loads(record.read_text())
    assert not list((tmp_path / "home").glob("models/*")), "an embedded model was pretrained"


def test_synthetic_experiment_file_resolves():
    cells = run(
        output=False,
        config=ROOT / "experiments" / "synthetic_aerial.toml",
        dry_run=True,
        progress=False,
    )
    assert len(cells) == 6 * 4 * 3
    assert {c["attack"]["name"] for c in cells} == {"pgd", "bert-attack", "co-attack", "sga"}
    assert {(c["defense"]["name"], len(c["augmenters"])) for c in cells} == {
        ("none", 0),
        ("tecoa", 0),
        ("fare", 0),
        ("mat", 0),
        ("mat", 1),
    }


def test_eps_sweep_reuses_the_grid_models():
    grid = run(
        output=False,
        config=ROOT / "experiments" / "synthetic_aerial.toml",
        dry_run=True,
        progress=False,
    )
    sweep = run(
        output=False,
        config=ROOT / "experiments" / "synthetic_aerial_eps.toml",
        dry_run=True,
        progress=False,
    )
    assert len(sweep) == 6 * 5
    assert sorted({round(c["attack"]["options"]["eps"] * 255, 1) for c in sweep}) == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
    ]

    def model(c):
        return json.dumps(
            {k: c[k] for k in ("backbone", "dataset", "defense", "augmenters", "seed")},
            sort_keys=True,
        )

    assert {model(c) for c in sweep} <= {model(c) for c in grid}  # same cached defenses


def _rsicd_fixture(folder: Path) -> Path:
    """A tiny RSICD-format dataset: Karpathy JSON + 224×224 JPEGs, duplicated captions."""
    (folder / "RSICD_images").mkdir(parents=True)
    images = []
    for i, (scene, color) in enumerate(
        [
            ("airport", (200, 200, 200)),
            ("forest", (20, 120, 30)),
            ("beach", (230, 210, 150)),
            ("river", (40, 80, 200)),
            ("farmland", (120, 160, 60)),
            ("desert", (220, 180, 100)),
        ]
    ):
        name = f"{scene}_{i}.jpg"
        Image.new("RGB", (224, 224), color).save(folder / "RSICD_images" / name)
        raw = [
            f"many buildings near a {scene} .",
            f"a {scene} is shown .",
            f"a {scene} is shown .",
            f"this is a {scene} .",
            f"a {scene} is shown .",
        ]
        images.append(
            {
                "filename": name,
                "imgid": i,
                "split": "test" if i >= 3 else "train",
                "sentences": [{"raw": r, "tokens": r.split()} for r in raw],
            }
        )
    path = folder / "dataset_rsicd.json"
    path.write_text(json.dumps({"images": images, "dataset": "rsicd"}))
    return path


def test_rsicd_experiment_runs_on_a_tiny_fixture(tiny, tmp_path):
    data = _rsicd_fixture(tmp_path / "RSICD")
    opts = {
        "path": str(data),
        "image_root": str(tmp_path / "RSICD" / "RSICD_images"),
        "image_size": "32",
    }
    cells = run(
        output=False,
        config=ROOT / "experiments" / "rsicd.toml",
        dataset_options=opts,
        dry_run=True,
        progress=False,
    )
    assert len(cells) == 72 and cells[0]["dataset"]["options"]["path"] == str(data)
    [rec] = run(
        config=ROOT / "experiments" / "rsicd.toml",
        backbone="tiny",
        defense="none",
        attack="pgd",
        seed=0,
        dataset_options=opts,
        attack_options={"steps": "2"},
        output=tmp_path / "out",
        progress=False,
    )
    assert rec["data"]["images"] == 3 and rec["data"]["texts"] == 15
    assert rec["config"]["dataset"]["name"] == "karpathy"
    assert rec["metrics"]["budget"]["max_linf"] <= 2 / 255 + 1e-6


@pytest.mark.parametrize("name", ["rsicd", "rsicd_published", "flickr30k"])
def test_real_data_experiments_use_fine_tuning_recipes(tiny, tmp_path, name):
    data = _rsicd_fixture(tmp_path / "RSICD")
    opts = {
        "path": str(data),
        "image_root": str(tmp_path / "RSICD" / "RSICD_images"),
        "train_path": str(data),
        "image_size": "32",
    }
    cells = run(
        output=False,
        config=ROOT / "experiments" / f"{name}.toml",
        dataset_options=opts,
        dry_run=True,
        progress=False,
    )
    assert len(cells) == 72
    for cell in cells:
        defense = cell["defense"]
        if defense["name"] != "none":  # a pretrained ViT-B/16 is fine-tuned gently
            assert defense["options"]["lr"] == 1e-5 and defense["options"]["weight_decay"] == 1e-4
        for aug in cell["augmenters"]:
            if aug["name"] == "caption":  # a real captioner, not the synthetic-aerial one
                assert aug["options"]["model"] != "vladv-tiny-captioner"
        attack = cell["attack"]
        published = name == "rsicd_published"
        if attack["name"] == "bert-attack":
            assert (attack["options"]["objective"] == "kl") is published
        if attack["name"] in ("bert-attack", "sga", "co-attack"):
            assert attack["options"]["reference_compat"] is published

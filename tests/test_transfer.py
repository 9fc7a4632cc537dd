"""Transfer attacks: crafted once per source, reused by every target, never a target's gradient."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import vladv
from vladv.errors import OptionError
from vladv.experiment import run
from vladv.grid import GridSpec, load_experiment_file
from vladv.modelspec import ModelSpec, parse_model
from vladv.results import run_id
from vladv.testing import TinyBackbone, registered_plugin

CALLS: Counter = Counter()  # (seed, "grad" | "no-grad") → forward passes of counting backbones


class CountingTiny(TinyBackbone):
    """The tiny backbone, counting its forward passes per seed and whether gradients were on."""

    name = "counting"

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        CALLS[
            (self.seed, "grad" if torch.is_grad_enabled() and pixels.requires_grad else "no-grad")
        ] += 1
        return super().image_features(pixels)

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        CALLS[(self.seed, "grad" if torch.is_grad_enabled() else "no-grad")] += 1
        return super().text_features(tokens)


@dataclass(frozen=True)
class CountingOptions:
    seed: int = vladv.option(0, "initialization seed")
    label: str = vladv.option("", "a name that does not change the weights")


class DropWord(vladv.Attack):
    """Text attack: drops each caption's first word (deterministic)."""

    modality = "text"

    @property
    def threat_model(self) -> vladv.ThreatModel:
        return vladv.ThreatModel("text", max_words=1)

    def perturb(self, backbone, batch, generator):
        return vladv.AttackOutput(batch.images, [" ".join(t.split()[1:]) for t in batch.texts])


class ShiftAndDrop(vladv.Attack):
    """Multimodal attack: every pixel darkened by 4/255 and each caption's first word dropped."""

    modality = "multimodal"

    @property
    def threat_model(self) -> vladv.ThreatModel:
        return vladv.ThreatModel("multimodal", "linf", 4 / 255, max_words=1)

    def perturb(self, backbone, batch, generator):
        images = (batch.images - 4 / 255).clamp(0, 1)
        return vladv.AttackOutput(images, [" ".join(t.split()[1:]) for t in batch.texts])


class Plugin:
    @vladv.hookimpl
    def vladv_backbones(self):
        yield vladv.BackboneSpec(
            name="counting",
            summary="counting tiny backbone",
            options=CountingOptions,
            factory=lambda o, ctx: CountingTiny(seed=o.seed),
        )

    @vladv.hookimpl
    def vladv_attacks(self):
        yield vladv.AttackSpec(
            name="drop-word", summary="drops the first word", factory=DropWord, modality="text"
        )
        yield vladv.AttackSpec(
            name="shift-and-drop",
            summary="darkens the image, drops the first word",
            factory=ShiftAndDrop,
            modality="multimodal",
        )


@pytest.fixture
def world(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("VLADV_HOME", str(tmp_path / "home"))
    CALLS.clear()
    with registered_plugin(Plugin()):
        yield


PGD = {"steps": 2, "eps": "8/255"}


def _run(targets, sources, tmp_path, name, **kw):
    return run(
        model=targets,
        source=sources,
        dataset="tiny",
        attack=kw.pop("attack", "pgd"),
        attack_options=PGD if kw.pop("pgd", True) else None,
        output=tmp_path / name,
        progress=False,
        **kw,
    )


def _source_passes(seed: int) -> int:
    return CALLS[(seed, "grad")] + CALLS[(seed, "no-grad")]


def test_crafted_once_per_source_for_several_targets(world, tmp_path, monkeypatch):
    _run(["counting(seed=1)"], ["counting"], tmp_path, "one")
    one_target = _source_passes(0)
    assert one_target > 0 and CALLS[(0, "grad")] > 0  # the source was attacked
    CALLS.clear()
    monkeypatch.setenv("VLADV_HOME", str(tmp_path / "fresh"))  # empty cache: craft again
    _run(
        ["counting(seed=1)", "counting(seed=2)", "counting(seed=3)"],
        ["counting"],
        tmp_path,
        "three",
    )
    assert _source_passes(0) == one_target  # three targets, one crafting
    CALLS.clear()
    recs = _run(["counting(seed=4)"], ["counting"], tmp_path, "cached")
    assert _source_passes(0) == 0  # another grid reuses the cached examples
    assert recs[0]["config"]["source"]["backbone"]["options"]["seed"] == 0


def test_a_target_other_than_the_source_never_receives_gradients(world, tmp_path):
    recs = _run(
        ["counting(seed=1)", "counting(seed=2)"],
        ["counting"],
        tmp_path,
        "t",
        attack=["pgd", "drop-word"],
    )
    assert CALLS[(0, "grad")] > 0
    assert CALLS[(1, "grad")] == CALLS[(2, "grad")] == 0
    assert CALLS[(1, "no-grad")] > 0 and CALLS[(2, "no-grad")] > 0
    assert {r["config"]["attack"]["name"] for r in recs} == {"pgd", "drop-word"}
    for rec in recs:
        assert rec["timings"]["craft"] >= 0 and rec["source_model"] == {
            "name": "counting",
            "seed": 0,
        }
        assert rec["metrics"]["budget"]["max_linf"] <= (
            8.01 / 255 if rec["config"]["attack"]["name"] == "pgd" else 0
        )


def test_white_box_records_keep_their_run_id(tiny, tmp_path):
    [rec] = run(
        output=False,
        backbone="tiny",
        dataset="tiny",
        attack="pgd",
        attack_options={"steps": 2},
        progress=False,
    )
    assert rec["run_id"] == "d6840cc44bb34f56"  # the id vladv gave this run before transfers
    assert rec["config"]["source"] is None and rec["schema_version"] >= 4
    assert "source_model" not in rec and "craft" not in rec["timings"]
    [same] = run(
        output=False,
        backbone="tiny",
        dataset="tiny",
        attack="pgd",
        attack_options={"steps": 2},
        source=["self", "tiny", "tiny(seed=0, image_size=16)"],
        progress=False,
    )  # the target itself, however spelled: white-box
    assert same["run_id"] == rec["run_id"]
    assert same["metrics"]["adversarial"] == rec["metrics"]["adversarial"]


def test_transfer_from_an_identical_model_equals_white_box(world, tmp_path):
    """The crafted path (δ cached as float16, captions as strings) reproduces white-box."""
    [white] = _run(["counting"], [], tmp_path, "w", attack=["pgd", "drop-word"])[:1]
    recs = _run(["counting"], ["counting(label=twin)"], tmp_path, "x", attack=["pgd", "drop-word"])
    by_attack = {r["config"]["attack"]["name"]: r for r in recs}
    assert by_attack["pgd"]["config"]["source"] is not None
    assert by_attack["pgd"]["run_id"] != white["run_id"]
    for key in ("adversarial", "asr"):
        assert by_attack["pgd"]["metrics"][key] == white["metrics"][key]
    budget = by_attack["pgd"]["metrics"]["budget"]["max_linf"]
    assert budget == pytest.approx(white["metrics"]["budget"]["max_linf"], abs=1e-5)


def test_model_specs_parse_and_fail_in_one_line():
    assert parse_model(
        "clip(model=vladv-tiny-align, pretrain_seed=1)/tecoa(eps=4/255)+eda"
    ) == ModelSpec(
        "clip",
        (("model", "vladv-tiny-align"), ("pretrain_seed", "1")),
        "tecoa",
        (("eps", "4/255"),),
        (("eda", ()),),
    )
    for bad in ("clip(model=x", "clip/mat/fare", "clip(model)", "/mat", "clip/none+eda"):
        with pytest.raises(OptionError):
            parse_model(bad)
    with pytest.raises(OptionError, match="model spec"):
        GridSpec(sources=("clip(",))


def test_sources_from_an_experiment_file_and_the_cli(world, tmp_path):
    from typer.testing import CliRunner

    from vladv.cli import app

    path = tmp_path / "t.toml"
    path.write_text(
        '[experiment]\nmodels = ["counting", "counting(seed=1)"]\n'
        'datasets = ["tiny"]\nattacks = ["pgd"]\nsources = ["self", "counting"]\n'
        "[options.attack]\nsteps = 2\n"
    )
    grid, _ = load_experiment_file(path)
    assert grid.to_dict()["sources"] == ["self", "counting"]
    cells = run(output=False, config=path, dry_run=True, progress=False)
    assert len(cells) == 3  # counting←self, counting(seed=1)←self, counting(seed=1)←counting
    ids = {c["run_id"] for c in cells}
    assert run_id({k: v for k, v in cells[0].items() if k not in ("run_id", "done")}) in ids
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--model",
            "counting(seed=1)",
            "--source",
            "counting",
            "--dataset",
            "tiny",
            "--attack",
            "pgd",
            "--attack-opt",
            "steps=2",
            "--dry-run",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert '"source"' in result.output and '"seed": 1' in result.output


def test_the_shipped_transfer_experiment_plans_its_matrix():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "experiments" / "transfer.toml"
    cells = run(output=False, config=path, dry_run=True, progress=False)
    transfer = [c for c in cells if c["source"] is not None]
    assert len(cells) == 372 and len(cells) - len(transfer) == (4 + 3) * 4 * 3  # white-box
    crafts = {
        (json.dumps(c["source"], sort_keys=True), c["attack"]["name"], c["seed"]) for c in transfer
    }
    assert len(crafts) == 4 * 4 * 3  # each source crafts each attack once per seed
    assert all(c["source"]["defense"]["name"] == "none" for c in transfer)


def test_a_target_of_another_resolution_embeds_the_pixels_itself(tiny, tmp_path):
    [rec] = run(
        output=False,
        model="tiny(image_size=12, embed_dim=8)",
        source="tiny",
        dataset="tiny",
        attack="pgd",
        attack_options=PGD,
        progress=False,
    )
    assert rec["config"]["source"]["backbone"]["options"]["image_size"] == 16
    assert rec["config"]["backbone"]["options"]["image_size"] == 12
    assert 0 < rec["metrics"]["budget"]["max_linf"] <= 8.01 / 255
    assert rec["metrics"]["adversarial"]["tr_r1"] is not None


def test_model_specs_expand_like_the_backbone_and_defense_axes():
    from vladv.grid import expand
    from vladv.transfer import source_keys

    options = {"defense": {"mat.steps": 7}, "augmenter": {"eda.alpha": 0.2}}
    axes = expand(GridSpec(defenses=("none", "mat+eda"), augment=("caption",), options=options))
    specs = expand(GridSpec(models=("clip", "clip/mat+eda"), augment=("caption",), options=options))
    assert [k for k, _ in axes] == [k for k, _ in specs]
    mat = specs[1][0]
    assert [a for a, _ in mat.augmenters] == ["eda", "caption"]
    grid = GridSpec(
        models=("clip",),
        sources=("self", "clip/mat+eda", "clip(pretrain_seed=1)"),
        augment=("caption",),
        options=options,
    )
    none, defended, other = source_keys(grid, expand(grid)[0][0])
    assert none is None and defended == mat  # the same model, the same cached checkpoint
    assert dict(other.backbone_options)["pretrain_seed"] == 1


def test_parts_evaluate_one_half_of_the_pairs_from_one_crafting(world, tmp_path):
    """``part``: image = the adversarial images with clean captions, text = the reverse; the
    parts of a transfer attack share one crafting, and ``both`` keeps the whole-pair run id."""
    [whole] = _run(
        ["counting(seed=1)"], ["counting"], tmp_path, "w", attack="shift-and-drop", pgd=False
    )
    passes = _source_passes(0)
    recs = _run(
        ["counting(seed=1)"],
        ["counting"],
        tmp_path,
        "p",
        attack="shift-and-drop",
        pgd=False,
        part=["both", "image", "text"],
    )
    assert _source_passes(0) == passes  # the cached crafting served all three parts
    by_part = {r["config"]["attack"].get("part", "both"): r for r in recs}
    assert by_part["both"]["run_id"] == whole["run_id"]
    assert by_part["both"]["metrics"]["adversarial"] == whole["metrics"]["adversarial"]
    assert len({r["run_id"] for r in recs}) == 3
    image, text = by_part["image"]["metrics"], by_part["text"]["metrics"]
    assert image["budget"]["max_words_changed"] == 0 < image["budget"]["max_linf"]
    assert text["budget"]["max_linf"] == 0 < text["budget"]["max_words_changed"]
    assert image["adversarial"] != text["adversarial"] != whole["metrics"]["adversarial"]
    # white-box too, and a report keeps the parts apart
    white = run(
        model="counting",
        dataset="tiny",
        attack="shift-and-drop",
        part="image",
        output=tmp_path / "wb",
        progress=False,
    )
    assert white[0]["config"]["attack"]["part"] == "image" and white[0]["config"]["source"] is None
    from vladv.reports import report

    summary = Path(report(tmp_path / "p")["files"]["summary_md"]).read_text()
    assert "shift-and-drop ε=4/255 [image part]" in summary
    assert "shift-and-drop ε=4/255 [text part]" in summary


def test_an_unknown_part_is_one_line_with_a_suggestion(world, tmp_path):
    from typer.testing import CliRunner

    from vladv.cli import app

    with pytest.raises(OptionError, match="unknown attack part 'imag'; did you mean 'image'"):
        GridSpec(parts=("imag",))
    result = CliRunner().invoke(app, ["run", "--attack", "pgd", "--part", "txt", "--dry-run"])
    assert result.exit_code == 2
    assert "unknown attack part 'txt'; did you mean 'text'" in result.output
    result = CliRunner().invoke(
        app,
        ["run", "--attack", "pgd", "--part", "both", "--part", "image", "--dry-run"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 0 and "pgd [image part]" in result.output
    assert "Traceback" not in result.output
    toml = tmp_path / "parts.toml"
    toml.write_text('[experiment]\nattacks = ["pgd"]\nparts = ["both", "image"]\n')
    spec, _ = load_experiment_file(toml)
    assert spec.parts == ("both", "image")

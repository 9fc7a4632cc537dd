"""The models that ship with vladv (vladv/prebuilt): what they are, that they are current, and how
the cache takes them (docs/world.md#prebuilt-models)."""

from __future__ import annotations

import json

import pytest
import torch

from vladv.cache import (
    PREBUILT_DIR,
    PREBUILT_MAT_RUN,
    build_once,
    prebuilt_manifest,
    seed_prebuilt,
    tree_sha256,
)


def test_manifest_lists_exactly_the_shipped_files_with_their_hashes():
    manifest = prebuilt_manifest()
    on_disk = {p.name for p in PREBUILT_DIR.iterdir() if p.name != "MANIFEST.json"}
    assert set(manifest) == on_disk
    for name, entry in manifest.items():
        assert tree_sha256(PREBUILT_DIR / name) == entry["sha256"], name
        assert entry["built"], name


def test_shipped_models_are_the_current_default_recipes():
    """A change of either recipe or of the world renames the cache entry: this fails until
    docs/world/ship_prebuilt.py has shipped the new models."""
    import vladv
    from vladv.kit.mlm import mlm_path
    from vladv.options import resolve_options
    from vladv.plugins import get_spec
    from vladv_plugins.clip_pretrain import trained_path

    ctx = vladv.Context()
    spec = get_spec("backbone", "clip").options
    clips = [  # the default CLIP and the research grid's other two training sets
        resolve_options("backbone 'clip'", spec, given)
        for given in ({}, {"pretrain_data": "generated"}, {"pretrain_data": "mixed"})
    ]
    expected = {trained_path(o, ctx).name for o in clips} | {mlm_path(ctx).name}
    shipped = set(prebuilt_manifest())
    mats = {n for n in shipped if n.startswith("mat-") and n.endswith(".safetensors")}
    assert expected == shipped - mats and len(mats) == 1, (
        "the default embedded models' recipes changed: run docs/world/ship_prebuilt.py --rebuild"
    )  # the MAT's name is checked by running it (test_shipped_mat_...)


def _fake_prebuilt(tmp_path, monkeypatch, name: str, folder: bool = False):
    ship = tmp_path / "ship"
    ship.mkdir()
    if folder:
        (ship / name).mkdir()
        (ship / name / "config.json").write_text("{}")
    else:
        (ship / name).write_bytes(b"weights")
    manifest = {"artifacts": {name: {"sha256": tree_sha256(ship / name), "built": "test"}}}
    (ship / "MANIFEST.json").write_text(json.dumps(manifest))
    monkeypatch.setattr("vladv.cache.PREBUILT_DIR", ship)
    monkeypatch.delenv("VLADV_PREBUILT", raising=False)
    return ship


@pytest.mark.parametrize("folder", [False, True])
def test_build_once_takes_a_shipped_copy_instead_of_building(tmp_path, monkeypatch, folder):
    _fake_prebuilt(tmp_path, monkeypatch, "model-abc", folder)
    target = tmp_path / "cache" / "model-abc"
    said: list[str] = []

    def build():
        raise AssertionError("built although a prebuilt copy ships")

    got = build_once(target, lambda: target if target.exists() else None, build, said.append, True)
    assert got == target
    assert (target / "config.json").is_file() if folder else target.read_bytes() == b"weights"
    assert any("prebuilt" in s and "VLADV_PREBUILT=0" in s for s in said)


def test_forced_unknown_damaged_or_disabled_prebuilt_builds_here(tmp_path, monkeypatch):
    ship = _fake_prebuilt(tmp_path, monkeypatch, "model-abc")
    target = tmp_path / "cache" / "model-abc"

    def run(prebuilt: bool, name: str = "model-abc") -> str:
        t = target.with_name(name)
        t.unlink(missing_ok=True)

        def build():
            t.parent.mkdir(parents=True, exist_ok=True)
            t.write_bytes(b"built here")
            return t

        return build_once(t, lambda: t if t.exists() else None, build, None, prebuilt).read_text()

    assert run(prebuilt=False) == "built here"  # `force`
    assert run(prebuilt=True, name="model-other") == "built here"  # another recipe
    monkeypatch.setenv("VLADV_PREBUILT", "0")
    assert run(prebuilt=True) == "built here"
    monkeypatch.delenv("VLADV_PREBUILT")
    assert run(prebuilt=True) == "weights"
    (ship / "model-abc").write_bytes(b"tampered")
    said: list[str] = []
    target.unlink()
    assert not seed_prebuilt(target, said.append)
    assert not target.exists() and "damaged" in said[0]


@pytest.mark.slow
def test_shipped_clip_loads_without_pretraining_and_scores_as_its_manifest_says(monkeypatch):
    """An empty cache takes the shipped CLIP (no pretraining) and its clean test recall is the
    one recorded when it was built: the shipped weights are the described model."""
    import vladv_plugins.clip_pretrain as cp
    from vladv.experiment import make_context
    from vladv.options import resolve_options
    from vladv.plugins import get_spec

    def no_pretraining(*args, **kwargs):
        raise AssertionError("pretrained although the default model ships")

    monkeypatch.setattr(cp, "_pretrain", no_pretraining)
    monkeypatch.delenv("VLADV_PREBUILT", raising=False)
    ctx = make_context("cpu", seed=0)
    spec = get_spec("backbone", "clip")
    options = resolve_options("backbone 'clip'", spec.options, {})
    path = cp.pretrain_clip(options, ctx)
    entry = prebuilt_manifest()[path.name]
    world = cp.world_dataset()
    test = world.factory(cp.dataset_options(options), ctx, "test")
    model = spec.factory(options, ctx)
    with torch.no_grad():
        metrics = cp.evaluate_clip(model, test)
    for key, value in entry["test_metrics"].items():
        assert round(metrics[key], 2) == pytest.approx(value, abs=0.3), key


@pytest.mark.slow
def test_shipped_mat_is_the_default_defense_and_scores_as_its_manifest_says(monkeypatch):
    """README command 1's defense (the default MAT of the default CLIP) is not trained from an
    empty cache: the shipped checkpoint has the name of today's recipe, and the defended model's
    clean test recall is the one recorded when it was built."""
    import vladv
    import vladv.experiment as E

    def no_training(*args, **kwargs):
        raise AssertionError(
            "trained MAT although the default one ships: its recipe changed — run "
            "docs/world/ship_prebuilt.py --rebuild"
        )

    monkeypatch.setattr(E, "_train_defense", no_training)
    monkeypatch.delenv("VLADV_PREBUILT", raising=False)
    [record] = vladv.run(**PREBUILT_MAT_RUN, progress=False)
    [entry] = [e for n, e in prebuilt_manifest().items() if n.startswith("mat-")]
    for key, value in entry["test_metrics"].items():
        assert record["metrics"]["clean"][key] == pytest.approx(value, abs=0.3), key

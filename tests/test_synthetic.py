"""The synthetic-aerial dataset plugin: determinism, captions, splits, cache."""

from __future__ import annotations

import collections

import pytest
import torch

import vladv
from vladv.errors import DatasetError
from vladv_plugins import synthetic
from vladv_plugins.aerial.world import SCENES, sample_scene
from vladv_plugins.synthetic import (
    SCENE_TYPES,
    SyntheticOptions,
    caption_corpus,
    load_synthetic,
)

TINY = SyntheticOptions(train_size=48, test_size=16, image_size=64)


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    monkeypatch.setenv("VLADV_HOME", str(tmp_path / "home"))
    return vladv.Context(progress=False)


def test_shapes_and_ranges(ctx):
    ds = load_synthetic(TINY, ctx, "test")
    assert ds.name == "synthetic-aerial" and ds.split == "test"
    assert len(ds) == 16 and len(ds.captions) == 16 * 5
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (16, 3, 64, 64)
    img, idx = ds[3]
    assert idx == 3 and img.dtype == torch.float32 and img.shape == (3, 64, 64)
    assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.01


def test_other_image_size(ctx):
    ds = load_synthetic(SyntheticOptions(train_size=4, test_size=4, image_size=32), ctx, "train")
    assert ds.images.shape == (4, 3, 32, 32)


def test_deterministic_by_seed(ctx):
    a_img, a_caps, _ = synthetic.generate(TINY, "train")
    b_img, b_caps, _ = synthetic.generate(TINY, "train")
    assert torch.equal(a_img, b_img) and a_caps == b_caps
    c_img, c_caps, _ = synthetic.generate(
        SyntheticOptions(train_size=48, test_size=16, seed=1), "train"
    )
    assert not torch.equal(a_img, c_img) and a_caps != c_caps


def test_prefix_stable_across_sizes():
    small, caps_small, _ = synthetic.generate(SyntheticOptions(train_size=8, test_size=4), "train")
    big, caps_big, _ = synthetic.generate(SyntheticOptions(train_size=12, test_size=4), "train")
    assert torch.equal(small, big[:8]) and caps_small == caps_big[:8]


def test_five_distinct_captions_and_maps(ctx):
    ds = load_synthetic(TINY, ctx, "train")
    for i, ids in enumerate(ds.img2txt):
        caps = [ds.captions[t] for t in ids]
        assert len(ids) == 5 and len(set(caps)) == 5
        assert all(ds.txt2img[t] == i for t in ids)
    assert sorted(t for ids in ds.img2txt for t in ids) == list(range(len(ds.captions)))


def test_captions_state_the_attributes(ctx):
    ds = load_synthetic(TINY, ctx, "train")
    for s, ids in zip(ds.scenes, ds.img2txt):
        caps = [ds.captions[t].lower() for t in ids]
        assert all(len(c.split()) >= 5 for c in caps)
        assert any(
            all(c in cap for c in s.colors) for cap in caps
        )  # the image's captions, together
    big = synthetic.scene_records(SyntheticOptions(train_size=400, test_size=1), "train")[0]
    assert any(s.color2 for s in big) and all(
        s.scene == "dense-residential" for s in big if s.color2
    )


def test_train_test_disjoint(ctx):
    train = load_synthetic(TINY, ctx, "train")
    test = load_synthetic(TINY, ctx, "test")
    train_rows = {bytes(x.numpy().tobytes()) for x in train.images}
    assert not any(bytes(x.numpy().tobytes()) in train_rows for x in test.images)
    assert train.captions[:5] != test.captions[:5]


def test_cache_reload_equals_fresh(ctx):
    first = load_synthetic(TINY, ctx, "test")
    path = synthetic.cache_path(TINY, ctx, "test")
    assert path.is_file() and path.suffix == ".safetensors"
    again = load_synthetic(TINY, ctx, "test")
    fresh_img, fresh_caps, fresh_scenes = synthetic.generate(TINY, "test")
    assert torch.equal(again.images, fresh_img)
    assert again.captions == [c for caps in fresh_caps for c in caps]
    assert again.scenes == fresh_scenes == first.scenes


def test_corrupt_cache_is_regenerated(ctx):
    load_synthetic(TINY, ctx, "test")
    path = synthetic.cache_path(TINY, ctx, "test")
    path.write_bytes(b"not a safetensors file")
    ds = load_synthetic(TINY, ctx, "test")
    assert torch.equal(ds.images, synthetic.generate(TINY, "test")[0])


def test_bad_split(ctx):
    with pytest.raises(DatasetError, match="split"):
        load_synthetic(TINY, ctx, "validation")


def test_scene_types_and_vocabulary():
    assert len(SCENES) >= 12 and len(set(SCENE_TYPES)) == len(SCENES)
    import numpy as np

    rng = np.random.default_rng(0)
    seen = collections.Counter(sample_scene(rng).scene for _ in range(3000))
    assert len(seen) == len(SCENES) >= 12
    corpus = caption_corpus(SyntheticOptions(train_size=400, test_size=1))
    assert len(corpus) == 2000
    words = {w.strip(".,;:") for c in corpus for w in c.lower().split()}
    for w in (
        "aerial",
        "view",
        "photo",
        "there",
        "see",
        "top",
        "left",
        "next",
        "two",
        "three",
        "red",
    ):
        assert w in words, w
    assert len(words) > 200


def test_plugin_registration():
    specs = list(synthetic.vladv_datasets())
    assert [s.name for s in specs] == ["synthetic-aerial"]
    assert specs[0].options is SyntheticOptions and specs[0].prepare is not None

"""caption: cross-modal pools from a tiny random HF BLIP and from the embedded tiny captioner."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

import vladv
from vladv.errors import VladvError
from vladv.pools import caption_key
from vladv.testing import tiny_dataset
from vladv_plugins import captioning as C
from vladv_plugins import captioning_model as M


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: intra-op threads only add synchronization (10x slower on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    """A randomly initialized BLIP captioner with a locally trained WordPiece tokenizer."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(
        tiny_dataset(8).captions,
        vocab_size=120,
        min_frequency=1,
        show_progress=False,
        special_tokens=specials,
    )
    tok = BertTokenizerFast(
        tokenizer_object=wp._tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        encoder_hidden_size=32,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        sep_token_id=tok.sep_token_id,
        pad_token_id=tok.pad_token_id,
    )
    vision = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(
        BlipConfig(text_config=text, vision_config=vision, projection_dim=32)
    )
    folder = tmp_path_factory.mktemp("tiny-blip")
    model.save_pretrained(folder)
    BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok
    ).save_pretrained(folder)
    return folder


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VLADV_HOME", str(tmp_path))
    return tmp_path


def _check_pools(pools, ds, k):
    assert len(pools) == len(ds)
    for i, pool in enumerate(pools):
        keys = [caption_key(t) for t in pool]
        gt = {caption_key(ds.captions[t]) for t in ds.img2txt[i]}
        assert len(pool) == k and len(set(keys)) == k and not gt & set(keys)


def test_hf_blip_pools(tiny_blip, home):
    ds = tiny_dataset(5, image_size=16)
    ctx = vladv.Context(seed=1, progress=False)
    opts = C.CaptionOptions(model=str(tiny_blip), num_captions=3, max_length=8, batch_size=2)
    aug = C.CaptionAugmenter(opts, ctx)
    pools = aug.texts_for(ds)
    _check_pools(pools, ds, 3)
    assert C.CaptionAugmenter(opts, ctx).texts_for(ds) == pools  # cached
    aug.pool_path(ds).unlink()
    assert C.CaptionAugmenter(opts, ctx).texts_for(ds) == pools  # regenerated: same
    other = C.CaptionAugmenter(dataclasses.replace(opts, seed=7), ctx)
    assert other.texts_for(ds) != pools
    beams = C.CaptionAugmenter(dataclasses.replace(opts, temperature=0.0), ctx).texts_for(ds)
    assert all(0 < len(p) <= 3 for p in beams)


def test_missing_hf_model_is_a_clear_error(home, tmp_path):
    aug = C.CaptionAugmenter(C.CaptionOptions(model=str(tmp_path / "nope")), vladv.Context())
    with pytest.raises(VladvError, match="offline"):
        aug.texts_for(tiny_dataset(2))


def test_embedded_captioner_pools(home):
    ds = tiny_dataset(4, image_size=16)
    ctx = vladv.Context(seed=0, progress=False)
    opts = C.CaptionOptions(
        num_captions=3, pretrain_steps=3, pretrain_images=12, batch_size=3, max_length=12
    )
    path = C.prepare_captioner(opts, ctx)
    assert {"model.safetensors", "config.json", "training.json"} <= {p.name for p in path.iterdir()}
    assert path.parent == home / "models" and path.name.startswith(C.EMBEDDED_CAPTIONER)
    aug = C.CaptionAugmenter(opts, ctx)
    pools = aug.texts_for(ds)
    _check_pools(pools, ds, 3)
    assert C.CaptionAugmenter(opts, ctx).texts_for(ds) == pools
    aug.pool_path(ds).unlink()
    assert C.CaptionAugmenter(dataclasses.replace(opts, batch_size=2), ctx).texts_for(ds) == pools


def test_training_is_deterministic_and_sampling_is_per_image():
    ds = tiny_dataset(6, image_size=16)
    caps = ds.image_captions()
    cfg = M.CaptionerConfig(steps=2, batch_size=4, width=32, layers=1, heads=2)
    ctx = vladv.Context(progress=False)
    m1, vocab, stats = M.train_captioner(ds.images, caps, cfg, ctx)
    m2, _, _ = M.train_captioner(ds.images, caps, cfg, ctx)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert stats["train_images"] == 6 and len(vocab) == len(vocab.itos)

    def gens(idx):
        return [torch.Generator().manual_seed(100 + i) for i in idx]

    both = M.sample_captions(m1, vocab, ds.images[:3], 2, 1.0, 10, gens([0, 1, 2]))
    alone = M.sample_captions(m1, vocab, ds.images[1:2], 2, 1.0, 10, gens([1]))
    assert both[1] == alone[0] and len(both) == 3 and all(len(c) == 2 for c in both)
    greedy = M.sample_captions(m1, vocab, ds.images[:2], 4, 0.0, 10, gens([0, 1]))
    assert [len(c) for c in greedy] == [1, 1]


def test_vocab_roundtrip_and_detokenize():
    vocab = M.WordVocab.build(["A red-roofed house; two cars.", "Three houses, a road."])
    ids = vocab.encode("Two red-roofed houses; a road.", 40)
    assert ids[0] == M.BOS and ids[-1] == M.EOS
    assert vocab.decode(ids[1:]) == "Two red-roofed houses; a road."
    assert vocab.decode([vocab.stoi["cars"], M.EOS, vocab.stoi["road"]]) == "Cars"
    assert len(vocab.encode("a " * 100, 10)) == 10


def test_caption_quality_of_ground_truth():
    ds = tiny_dataset(4)
    pools = ds.image_captions()
    q = C.caption_quality(pools, ds)
    assert q["p1"] == q["p2"] == 1.0 and q["fill"] == 1.0 and q["per_image"] == 5


def _aerial(tmp_path, split: str = "test", **opts):
    spec = vladv.get_registry().get("dataset", "synthetic-aerial")
    options = spec.options(train_size=40, test_size=40, image_size=16, **opts)
    return spec.factory(options, vladv.Context(home=tmp_path), split)


def test_caption_quality_color_accuracy_on_synthetic_aerial(tmp_path):
    """The color accuracy reads the dataset's scenes and color words (no plugin module import)."""
    ds = _aerial(tmp_path)
    truth = ds.image_captions()
    wrong = [[f"a {'red' if s.color != 'red' else 'blue'} house"] for s in ds.scenes]
    assert 0.0 < C.caption_quality(truth, ds)["color_acc"] <= 1.0
    assert C.caption_quality(wrong, ds)["color_acc"] == 0.0


def _unshown_color(scene) -> str:
    from vladv_plugins.aerial.world import COLORS

    return next(c for c in COLORS if c not in scene.colors and c != "green")


def test_caption_quality_wrong_share_reads_what_the_image_shows(tmp_path):
    """Right captions contradict nothing; a recolored, recounted or resized object does; so do
    most captions of the generated images that show another scene than their captions state."""
    ds = _aerial(tmp_path)
    truth = ds.image_captions()
    assert C.caption_quality(truth, ds)["wrong"] == 0.0
    recolored = [
        (i, re.sub(rf"\b{s.color}\b", _unshown_color(s), truth[i][0].lower()))
        for i, s in enumerate(ds.scenes)
        if s.color in truth[i][0].lower().split()
    ]
    assert len(recolored) > 10 and all(ds.contradictions(recolored))
    counted = [(i, "five tiny planes") for i, s in enumerate(ds.scenes) if s.count not in (1, 5)]
    assert counted and all(ds.contradictions(counted))
    sized = [
        (i, f"a {'big' if s.size == 'small' else 'small'} house")
        for i, s in enumerate(ds.scenes)
        if s.size is not None
    ]
    assert sized and all(ds.contradictions(sized))

    gen = _aerial(tmp_path, "train", train_domain="generated", mismatch_rate=1.0)
    pairs = [(i, gen.captions[t]) for i, ids in enumerate(gen.img2txt) for t in ids]
    shown = gen.shown_scenes
    mismatched = [p for p in pairs if shown[p[0]] != gen.scenes[p[0]]]
    assert len(mismatched) > len(pairs) / 2
    assert sum(gen.contradictions(mismatched)) > 0.6 * len(mismatched)
    matched = [p for p in pairs if shown[p[0]] == gen.scenes[p[0]]]
    assert not any(gen.contradictions(matched))

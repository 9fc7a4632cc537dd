"""The clip backbone plugin: the embedded tiny model, checkpoints, errors, pretraining."""

from __future__ import annotations

import pytest
import torch

import vladv
from vladv.checkpoints import load_state_dict, read_metadata, save_state_dict
from vladv.errors import CheckpointError, OptionError, VladvError
from vladv_plugins import clip_pretrain
from vladv_plugins.clip import (
    ClipBackbone,
    ClipOptions,
    build_clip,
    create_open_clip,
    prepare_clip,
)
from vladv_plugins.synthetic import SyntheticOptions, load_synthetic

TINY = {"pretrain_steps": 4, "pretrain_batch_size": 16, "pretrain_images": 32, "pretrain_warmup": 1}


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One VLADV_HOME for the module: the tiny model is pretrained once."""
    return tmp_path_factory.mktemp("vladv-home")


@pytest.fixture
def ctx(shared_home, monkeypatch):
    monkeypatch.setenv("VLADV_HOME", str(shared_home))
    return vladv.Context(progress=False)


@pytest.fixture
def fresh_ctx(tmp_path, monkeypatch):
    monkeypatch.setenv("VLADV_HOME", str(tmp_path / "home"))
    return vladv.Context(progress=False)


@pytest.fixture
def tiny(ctx):
    return build_clip(ClipOptions(**TINY), ctx)


def test_embeddings_normalized(tiny):
    assert isinstance(tiny, ClipBackbone) and not tiny.training
    assert tiny.image_size == 64
    img = tiny.encode_image(torch.rand(3, 3, 64, 64))
    txt = tiny.encode_text(["a red house in the top left", "an airport", "two white planes"])
    d = clip_pretrain.TINY_CONFIG["embed_dim"]
    assert img.shape == (3, d) and txt.shape == (3, d)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(txt.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert tiny.tokenize(["x"]).shape == (
        1,
        clip_pretrain.TINY_CONFIG["text_cfg"]["context_length"],
    )
    # other pixel sizes go through the differentiable resize
    assert tiny.encode_image(torch.rand(1, 3, 96, 80)).shape == (1, d)


def test_towers_and_identity(tiny):
    vis = {id(p) for p in tiny.image_tower.parameters()}
    txt = {id(p) for p in tiny.text_tower.parameters()}
    allp = {id(p) for p in tiny.parameters()}
    assert vis and txt and not vis & txt
    assert allp == vis | txt | {id(tiny.logit_scale_param)}
    assert tiny.logit_scale.item() > 1
    ident = tiny.identity()
    assert ident["name"] == "clip" and ident["model"] == "vladv-tiny-aerial" and ident["weights"]


def test_differentiable_wrt_pixels(tiny):
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    t = tiny.encode_text(["a photo of a farmland", "a port with ships"])
    (tiny.encode_image(x) * t).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not tiny.training


def test_save_load_roundtrip(tiny, ctx, tmp_path):
    x = torch.rand(2, 3, 64, 64)
    texts = ["three red planes", "a lake in the center"]
    ref_i, ref_t = tiny.encode_image(x), tiny.encode_text(texts)
    path = tiny.save(tmp_path / "backbone.safetensors")
    fresh = build_clip(ClipOptions(**TINY), ctx)
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(0.1)
    fresh.load_weights(path)
    assert torch.equal(fresh.encode_image(x), ref_i) and torch.equal(
        fresh.encode_text(texts), ref_t
    )
    # the same file as a local checkpoint option (vladv "model." keys are accepted)
    other = build_clip(ClipOptions(checkpoint=str(path)), ctx)
    assert torch.equal(other.encode_image(x), ref_i)
    assert other.identity()["checkpoint_sha256"]
    # and an open_clip-keyed weights-only .pt file
    pt = tmp_path / "open_clip.pt"
    torch.save(tiny.open_clip_state_dict(), pt)
    assert torch.equal(build_clip(ClipOptions(checkpoint=str(pt)), ctx).encode_text(texts), ref_t)


def test_bad_checkpoints(ctx, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError):
        build_clip(ClipOptions(checkpoint=str(corrupt)), ctx)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(CheckpointError):
        build_clip(ClipOptions(checkpoint=str(evil)), ctx)
    wrong = tmp_path / "wrong.safetensors"
    save_state_dict({"visual.nothing": torch.zeros(2)}, wrong)
    with pytest.raises(CheckpointError, match="does not fit"):
        build_clip(ClipOptions(checkpoint=str(wrong)), ctx)
    with pytest.raises(CheckpointError, match="not found"):
        build_clip(ClipOptions(checkpoint=str(tmp_path / "missing.safetensors")), ctx)


def test_pretrained_tag_offline(ctx, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(VladvError, match="pretrained"):
        build_clip(ClipOptions(model="RN50", pretrained="openai"), ctx)
    with pytest.raises(OptionError, match="unknown open_clip model"):
        build_clip(ClipOptions(model="no-such-model"), ctx)
    with pytest.raises(OptionError):
        build_clip(ClipOptions(pretrained="laion2b"), ctx)


def test_pretrain_cached_and_deterministic(fresh_ctx, capsys):
    ctx = fresh_ctx
    opts = ClipOptions(**TINY)
    path = clip_pretrain.pretrain_clip(opts, ctx)
    assert "building the embedded model (first run)" in capsys.readouterr().err
    meta = read_metadata(path)
    assert "config" in meta and "test_metrics" in meta
    mtime = path.stat().st_mtime_ns
    prepare_clip(opts, ctx)  # cached: nothing rebuilt
    assert path.stat().st_mtime_ns == mtime and "first run" not in capsys.readouterr().err
    first = load_state_dict(path)
    prepare_clip(opts, ctx, force=True)
    again = load_state_dict(path)  # same seed, same weights
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)


def test_training_lowers_loss(ctx):
    data = load_synthetic(SyntheticOptions(train_size=8, test_size=4), ctx, "train")
    torch.manual_seed(0)
    model = create_open_clip(clip_pretrain.DEFAULT_MODEL)
    backbone = ClipBackbone(model, clip_pretrain.get_tokenizer(clip_pretrain.DEFAULT_MODEL))
    tokens = backbone.tokenize(data.captions).view(8, 5, -1)
    losses = clip_pretrain.train_clip(
        model,
        backbone.preprocess,
        data.images,
        tokens,
        steps=12,
        batch_size=8,
        lr=2e-3,
        warmup=2,
        seed=0,
    )
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < losses[0] - 0.5


def _tiny_training(data, tokens, backbone, steps: int, **options) -> list[float]:
    """The losses of a seeded few-step pretraining of a fresh embedded CLIP on ``data``."""
    torch.manual_seed(0)
    return clip_pretrain.train_clip(
        create_open_clip(clip_pretrain.DEFAULT_MODEL),
        backbone.preprocess,
        data.images,
        tokens,
        steps=steps,
        batch_size=8,
        lr=2e-3,
        seed=0,
        **options,
    )


def test_pretraining_noise_keeps_special_tokens_and_is_seeded(ctx):
    tok = clip_pretrain.get_tokenizer(clip_pretrain.DEFAULT_MODEL)
    tokens = tok(["a red house.", "three large planes near the runway."])
    mask = clip_pretrain._content_mask(tokens)
    n = (tokens != 0).sum(1)
    assert mask.sum(1).tolist() == (n - 2).tolist()  # every word token, not start/end/padding
    assert not mask[:, 0].any() and not mask[0, n[0] - 1] and not mask[1, n[1] - 1]

    data = load_synthetic(SyntheticOptions(train_size=8, test_size=4), ctx, "train")
    backbone = ClipBackbone(create_open_clip(clip_pretrain.DEFAULT_MODEL), tok)
    tokens = backbone.tokenize(data.captions).view(8, 5, -1)

    def losses(text_noise: float, image_noise: float) -> list[float]:
        return _tiny_training(
            data, tokens, backbone, steps=3, text_noise=text_noise, image_noise=image_noise
        )

    clean = losses(0.0, 0.0)
    assert losses(0.5, 0.0) == losses(0.5, 0.0) != clean  # seeded, and it changes the captions
    assert losses(0.0, 0.1) == losses(0.0, 0.1) != clean  # seeded, and it changes the pixels


def test_graded_targets():
    """β·distance soft targets: one-hot when every other pair is far, softened by near pairs,
    and the loss is lowest when the similarities follow the distances."""
    img = torch.nn.functional.normalize(
        torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    scale = torch.tensor(2.0)
    far = torch.full((4, 4), 9) - 9 * torch.eye(4, dtype=torch.long)
    hard = clip_pretrain.clip_loss(img, img, scale)
    assert torch.allclose(clip_pretrain.clip_loss(img, img, scale, far, 5.0), hard, atol=1e-6)
    assert torch.equal(clip_pretrain.clip_loss(img, img, scale, far, 0.0), hard)
    near = far.clone()
    near[0, 1] = near[1, 0] = 1  # pairs 0 and 1 share all but one attribute
    assert clip_pretrain.clip_loss(img, img, scale, near, 1.0) != hard
    # the targets are softmax(−β·d) per row, both directions
    txt = torch.nn.functional.normalize(
        torch.randn(4, 8, generator=torch.Generator().manual_seed(1)), dim=-1
    )
    logits = scale.exp() * img @ txt.T
    near[2, 3] = 2
    want = 0.5 * (
        -((-1.0 * near).softmax(1) * logits.log_softmax(1)).sum(1).mean()
        - ((-1.0 * near.T).softmax(1) * logits.T.log_softmax(1)).sum(1).mean()
    )
    assert torch.allclose(clip_pretrain.clip_loss(img, txt, scale, near, 1.0), want, atol=1e-6)


def test_graded_training_per_caption_codes(ctx):
    """Per-caption codes equal to the image's give the same training as per-image codes; a
    caption that states nothing (all codes negative) is never graded as far."""
    data = load_synthetic(SyntheticOptions(train_size=8, test_size=4), ctx, "train")
    tok = clip_pretrain.get_tokenizer(clip_pretrain.DEFAULT_MODEL)
    backbone = ClipBackbone(create_open_clip(clip_pretrain.DEFAULT_MODEL), tok)
    tokens = backbone.tokenize(data.captions).view(8, 5, -1)
    shown, stated = clip_pretrain.training_attributes(data)

    def losses(attributes) -> list[float]:
        return _tiny_training(data, tokens, backbone, steps=2, graded=1.0, attributes=attributes)

    per_image = losses((shown, stated))
    assert losses((shown, stated[:, None, :].expand(8, 5, -1))) == per_image
    silent = torch.full((8, 5, stated.shape[1]), -1)
    assert losses((shown, silent)) != per_image


def test_pretrain_steps_default_per_model(ctx):
    assert clip_pretrain.pretrain_steps(ClipOptions()) == 1350
    assert clip_pretrain.pretrain_steps(ClipOptions(model=clip_pretrain.ALIGN_MODEL)) == 1000
    assert clip_pretrain.pretrain_steps(ClipOptions(pretrain_steps=7)) == 7
    # the cache key holds the resolved count: 0 and the model's default are the same weights
    explicit = ClipOptions(pretrain_steps=1350)
    assert clip_pretrain.trained_path(ClipOptions(), ctx) == clip_pretrain.trained_path(
        explicit, ctx
    )
    assert clip_pretrain.trained_path(
        ClipOptions(pretrain_graded=0), ctx
    ) != clip_pretrain.trained_path(ClipOptions(), ctx)


def test_attribute_codes_and_training_attributes(ctx):
    from vladv_plugins.aerial.world import ATTRIBUTES, attribute_codes, attribute_distance

    data = load_synthetic(
        SyntheticOptions(train_size=16, test_size=4, train_domain="generated", mismatch_rate=0.5),
        ctx,
        "train",
    )
    shown, stated = clip_pretrain.training_attributes(data)
    assert shown.shape == stated.shape == (16, len(ATTRIBUTES))
    for i in range(16):  # Hamming distance of the codes = the records' attribute distance
        for j in range(16):
            d = int((shown[i] != stated[j]).sum())
            assert d == attribute_distance(data.shown_scenes[i], data.scenes[j])
    assert bool((shown != stated).any())  # mismatched generated pairs differ
    with pytest.raises(OptionError, match="attribute records"):
        clip_pretrain.training_attributes(object())  # e.g. a JSON + image-folder dataset
    (alone,) = attribute_codes(data.scenes[:3])
    assert alone.shape == (3, len(ATTRIBUTES))
    with pytest.raises(ValueError, match="attribute records"):
        clip_pretrain.train_clip(
            create_open_clip(clip_pretrain.DEFAULT_MODEL),
            torch.nn.Identity(),
            data.images,
            torch.zeros(16, 1, 4, dtype=torch.long),
            steps=1,
            batch_size=4,
            lr=1e-3,
            graded=1.0,
        )


def test_plugin_registration():
    from vladv_plugins import clip

    specs = list(clip.vladv_backbones())
    assert [s.name for s in specs] == ["clip"]
    assert specs[0].options is ClipOptions and specs[0].prepare is prepare_clip

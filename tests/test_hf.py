"""Backbone ``hf``: tiny random CLIP / ALIGN / SigLIP / BLIP models built offline from configs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import vladv.experiment as ex
from vladv.checkpoints import save_state_dict
from vladv.errors import OptionError, VladvError
from vladv.options import resolve_options
from vladv.testing import COLORS, PLACES, THINGS, registered_plugin, tiny_plugin
from vladv_plugins.hf import HFOptions, build_hf

transformers = pytest.importorskip("transformers")

FAMILIES = ("clip", "align", "siglip", "blip")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = sorted({"a", "number", "photo", "of", *COLORS, *THINGS, *PLACES, *map(str, range(10))})
VOCAB = 64
TEXT = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=1,
    num_attention_heads=2,
    max_position_embeddings=16,
)
VIT = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=1,
    num_attention_heads=2,
    image_size=32,
    patch_size=8,
)
# Tolerance of preprocessing against the HF image processor, in [0, 1] pixel units. vladv
# reproduces PIL's resampling filters (transformers' PIL processors call PIL, its torchvision
# processors reimplement it for uint8) but stays in float so gradients flow: HF rounds each
# resampling pass to 8 bits (≤ 0.5/255 per pass, ~1/255 measured). On white noise shrunk along
# both axes Pillow ≥ 11 may run the vertical pass first and differ by a few /255; photos: < 1/255.
PIXEL_TOL = 1.5 / 255


def _tokenizer(folder):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=16,
    )
    hf.save_pretrained(folder)


def _model_and_processor(family):
    t = transformers
    size = {"height": 32, "width": 32}
    if family == "clip":
        cfg = t.CLIPConfig(
            text_config={**TEXT, "eos_token_id": 3, "bos_token_id": 2, "pad_token_id": 0},
            vision_config=VIT,
            projection_dim=16,
        )
        return t.CLIPModel(cfg), t.CLIPImageProcessor(size={"shortest_edge": 36}, crop_size=size)
    if family == "siglip":
        cfg = t.SiglipConfig(text_config=TEXT, vision_config=VIT)
        return t.SiglipModel(cfg), t.SiglipImageProcessor(size=size)
    if family == "blip":
        cfg = t.BlipConfig(
            text_config={**TEXT, "encoder_hidden_size": 32},
            vision_config=VIT,
            image_text_hidden_size=16,
            projection_dim=16,
        )
        return t.BlipForImageTextRetrieval(cfg), t.BlipImageProcessor(size=size)
    # ALIGN: a two-stage EfficientNet (~20k parameters); its embedding size is the last stage's
    vision = dict(
        image_size=32,
        width_coefficient=1.0,
        depth_coefficient=1.0,
        kernel_sizes=[3, 3],
        in_channels=[32, 16],
        out_channels=[16, 24],
        depthwise_padding=[],
        strides=[1, 2],
        num_block_repeats=[1, 1],
        expand_ratios=[1, 6],
        hidden_dim=64,
    )
    cfg = t.AlignConfig(
        text_config=TEXT, vision_config=vision, projection_dim=24, temperature_init_value=0.5
    )
    proc = t.EfficientNetImageProcessor(
        size={"height": 36, "width": 36},
        crop_size=size,
        do_center_crop=True,
        rescale_offset=True,
        include_top=True,
    )
    return t.AlignModel(cfg), proc


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    out = {}
    for family in FAMILIES:
        folder = tmp_path_factory.mktemp(f"hf-{family}")
        torch.manual_seed(0)
        model, proc = _model_and_processor(family)
        model.save_pretrained(folder)
        proc.save_pretrained(folder)
        _tokenizer(folder)
        out[family] = str(folder)
    return out


def _build(folder, **given):
    return build_hf(
        resolve_options("backbone 'hf'", HFOptions, {"model": folder, **given}),
        ex.make_context("cpu", progress=False),
    )


@pytest.fixture(scope="module")
def backbones(folders):
    return {f: _build(folders[f]) for f in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_pgd_experiment_runs_end_to_end(folders, family):
    with registered_plugin(tiny_plugin):
        [rec] = ex.run(
            backbone="hf",
            backbone_options={"model": folders[family]},
            dataset="tiny",
            attack="pgd",
            attack_options={"steps": "2"},
            progress=False,
            device="cpu",
        )
    m = rec["metrics"]
    assert set(m["clean"]) >= {"tr_r1", "ir_r1", "rsum"} and set(m["adversarial"]) >= {"tr_r1"}
    assert m["budget"]["max_linf"] <= 2 / 255 + 1e-6
    assert rec["model"]["name"] == "hf" and rec["model"]["family"] == family


@pytest.mark.parametrize("family", FAMILIES)
def test_embeddings_normalized_and_differentiable(backbones, family):
    bb = backbones[family]
    assert not bb.training and bb.image_size == 32
    x = torch.rand(2, 3, 20, 28, requires_grad=True)
    img = bb.encode_image(x)
    txt = bb.encode_text(["a red house near a tree", "a blue ship", ""])
    assert img.shape[0] == 2 and txt.shape == (3, img.shape[1])
    assert torch.allclose(img.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(txt.norm(dim=-1), torch.ones(3), atol=1e-5)
    (grad,) = torch.autograd.grad((img @ txt.T).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None for p in bb.parameters())


@pytest.mark.parametrize("family", FAMILIES)
def test_text_padding_does_not_change_embeddings(backbones, family):
    bb = backbones[family]
    tokens = bb.tokenize(["a red house", "a green field beside a lake number 3"])
    assert (
        set(tokens) <= {"input_ids", "attention_mask"} and tokens["input_ids"].device.type == "cpu"
    )
    if family == "siglip":  # SigLIP is padded to max_length, as it was trained
        assert tokens["input_ids"].shape[1] == 16
    alone = bb.encode_text(["a red house"])
    together = bb.encode_text(["a red house", "a green field beside a lake number 3"])[:1]
    assert torch.allclose(alone, together, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("hw", [(23, 41), (70, 50)])
def test_preprocessing_matches_the_hf_image_processor(folders, backbones, family, hw):
    rng = np.random.default_rng(sum(hw))
    smooth = rng.integers(0, 256, (hw[0] // 4 + 1, hw[1] // 4 + 1, 3), dtype=np.uint8)
    pil = Image.fromarray(smooth).resize(hw[::-1], Image.BILINEAR)
    proc = transformers.AutoImageProcessor.from_pretrained(folders[family])
    expected = proc(images=pil, return_tensors="pt")["pixel_values"].float()
    pixels = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)[None].float() / 255
    bb = backbones[family]
    got = bb.preprocess(pixels)
    assert got.shape == expected.shape == (1, 3, 32, 32)
    err = ((got - expected) * bb.preprocess.std.view(1, 3, 1, 1)).abs()  # in [0, 1] pixel units
    assert err.max() <= PIXEL_TOL, f"max {err.max() * 255:.2f}/255"
    assert err.mean() <= 0.5 / 255


@pytest.mark.parametrize("mode", ["box", "bilinear", "hamming", "bicubic", "lanczos"])
def test_resampling_matches_pil_filters(mode):
    from vladv_plugins.hf import resample_matrix

    rng = np.random.default_rng(0)
    for width, out in [(50, 32), (32, 50), (37, 11), (224, 100)]:
        row = rng.integers(0, 256, (3, width), dtype=np.uint8)
        pil = Image.fromarray(row).resize((out, 3), getattr(Image, mode.upper()))
        ours = torch.from_numpy(row).double() @ resample_matrix(width, out, mode).T
        assert (
            ours.round().clamp(0, 255) - torch.from_numpy(np.array(pil)).double()
        ).abs().max() <= 1  # PIL's 8-bit fixed-point coefficients


@pytest.mark.parametrize("family", FAMILIES)
def test_towers_and_logit_scale(backbones, family):
    bb = backbones[family]
    image = {id(p) for p in bb.image_tower.parameters()}
    text = {id(p) for p in bb.text_tower.parameters()}
    assert image and text and not image & text
    assert isinstance(bb.logit_scale_param, torch.nn.Parameter)
    assert any(p is bb.logit_scale_param for p in bb.parameters())
    expected = {
        "clip": lambda: math.exp(2.6592),
        "align": lambda: 1 / 0.5,
        "siglip": lambda: math.exp(bb.model.logit_scale.item()),
        "blip": lambda: 1 / 0.07,
    }[family]()
    assert bb.logit_scale.item() == pytest.approx(min(expected, 100.0), rel=1e-3)
    emb = bb.token_embedding  # the text tower's word embeddings (gradient word importance)
    assert isinstance(emb, torch.nn.Embedding) and emb.num_embeddings >= len(bb.tokenizer)
    assert any(p is emb.weight for p in bb.text_tower.parameters())
    bb.train()
    assert bb.model.training and bb.image_tower.training
    bb.eval()
    assert not bb.model.training


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip(folders, family, tmp_path):
    bb = _build(folders[family])
    with torch.no_grad():
        for p in bb.parameters():
            p.add_(0.01 * torch.randn_like(p))
    x, texts = torch.rand(2, 3, 32, 32), ["a red house", "a white plane above a road"]
    want_i, want_t, want_s = bb.encode_image(x), bb.encode_text(texts), bb.logit_scale.item()
    path = bb.save(tmp_path / "bb.safetensors")
    for other in (_build(folders[family]), None):
        if other is None:  # the checkpoint option loads the same file on top of the folder
            other = _build(folders[family], checkpoint=str(path))
            assert "checkpoint_sha256" in other.identity()
        else:
            other.load_weights(path)
        assert torch.allclose(other.encode_image(x), want_i, atol=1e-5)
        assert torch.allclose(other.encode_text(texts), want_t, atol=1e-5)
        assert other.logit_scale.item() == pytest.approx(want_s, rel=1e-5)
    # a plain HF-key state dict (e.g. from save_pretrained) loads through the checkpoint option too
    hf_path = save_state_dict(bb.hf_model().state_dict(), tmp_path / "hf.safetensors")
    other = _build(folders[family], checkpoint=str(hf_path))
    assert torch.allclose(other.encode_image(x), want_i, atol=1e-5)
    if family != "blip":  # HF's BLIP retrieval model has no temperature to carry it
        assert other.logit_scale.item() == pytest.approx(want_s, rel=1e-5)


def test_bad_checkpoint_is_a_one_line_error(folders, tmp_path):
    path = save_state_dict({"nothing.here": torch.zeros(2)}, tmp_path / "bad.safetensors")
    with pytest.raises(VladvError, match="does not fit") as err:
        _build(folders["clip"], checkpoint=str(path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("model", ["no-such-org/no-such-model-vladv", "/no/such/folder"])
def test_missing_model_is_a_one_line_error(model):
    with pytest.raises(VladvError) as err:
        _build(model)
    msg = str(err.value)
    assert "\n" not in msg and model in msg and "backbone 'hf'" in msg


def test_model_option_is_required():
    with pytest.raises(OptionError, match="'model' is required"):
        _build("")


def test_wrong_architecture_and_family_mismatch(folders, tmp_path):
    transformers.BertConfig(**TEXT).save_pretrained(tmp_path)
    with pytest.raises(VladvError, match="'bert' model, not a supported dual encoder") as err:
        _build(str(tmp_path))
    assert "\n" not in str(err.value)
    with pytest.raises(VladvError, match="family=siglip but .* 'clip' model"):
        _build(folders["clip"], family="siglip")
    assert _build(folders["clip"], family="clip").family == "clip"


def test_cli_lists_hf_and_reports_errors_in_one_line():
    from vladv.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["plugins", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rows = {(r["kind"], r["name"]): r for r in json.loads(res.output)["plugins"]}
    assert {o["name"] for o in rows["backbone", "hf"]["options"]} == {
        "model",
        "family",
        "revision",
        "checkpoint",
        "max_length",
    }
    with registered_plugin(tiny_plugin):
        res = runner.invoke(
            app,
            [
                "run",
                "--backbone",
                "hf",
                "--backbone-opt",
                "model=/no/such/folder",
                "--dataset",
                "tiny",
                "-q",
            ],
        )
    assert res.exit_code == 2 and "/no/such/folder" in res.output
    assert "Traceback" not in res.output

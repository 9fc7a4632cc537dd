"""Backbone plugin ``clip``: any open_clip model, and the embedded default ``vladv-tiny-aerial``.

``model`` names an open_clip architecture; weights come from an open_clip ``pretrained`` tag
(downloads fail offline with a clear error), from a local ``checkpoint`` (safetensors or a
weights-only torch file, never pickle), or, for the embedded default, from vladv's own
pretraining on synthetic-aerial, cached under ``VLADV_HOME/models``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import open_clip
import torch
from torch import nn

import vladv
from vladv.cache import file_sha256
from vladv.checkpoints import load_into, load_state_dict
from vladv.errors import CheckpointError, OptionError, VladvError, first_line
from vladv.kit.hub import quiet_transformers
from vladv_plugins.clip_backbone import ClipBackbone
from vladv_plugins.clip_pretrain import (
    ALIGN_MODEL,
    DEFAULT_MODEL,
    EMBEDDED_MODELS,
    TINY_CONFIG,
    evaluate_clip,
    get_tokenizer,
    pretrain_clip,
    quiet_open_clip,
    register_embedded,
    trained_path,
)

__all__ = [
    "DEFAULT_MODEL",
    "TINY_CONFIG",
    "ClipBackbone",
    "ClipOptions",
    "build_clip",
    "create_open_clip",
    "evaluate_clip",
    "load_open_clip_weights",
    "prepare_clip",
    "pretrain_clip",
]


@dataclass(frozen=True)
class ClipOptions:
    model: str = vladv.option(
        DEFAULT_MODEL,
        f"open_clip model name (default: vladv's embedded tiny "
        f"CLIP; {ALIGN_MODEL}: the embedded ALIGN-style model)",
    )
    pretrained: str = vladv.option(
        "", "open_clip pretrained tag (needs the weights in the local cache)"
    )
    checkpoint: str = vladv.option("", "local state dict (.safetensors, or weights-only .pt/.bin)")
    download: bool = vladv.option(
        False, "let open_clip download the pretrained tag (else: local cache only)"
    )
    pretrain_steps: int = vladv.option(
        0,
        "embedded model: optimizer steps (0 = the model's default: 1,350 for "
        f"{DEFAULT_MODEL}, 1,000 for {ALIGN_MODEL})",
        min=0,
    )
    pretrain_batch_size: int = vladv.option(128, "embedded model: images per step", min=2)
    pretrain_lr: float = vladv.option(2e-3, "embedded model: peak AdamW learning rate", min=0)
    pretrain_warmup: int = vladv.option(100, "embedded model: linear warmup steps", min=0)
    pretrain_weight_decay: float = vladv.option(0.05, "embedded model: AdamW weight decay", min=0)
    pretrain_seed: int = vladv.option(
        0, "embedded model: seed of init, shuffling and captions", min=0
    )
    pretrain_images: int = vladv.option(
        0, "embedded model: train images (0 = synthetic-aerial default)", min=0
    )
    pretrain_text_noise: float = vladv.option(
        0.0,
        "embedded model: share of caption tokens replaced by random caption tokens while "
        "pretraining (word noise, as web captions have)",
        min=0,
        max=1,
    )
    pretrain_image_noise: float = vladv.option(
        0.03,
        "embedded model: largest std of the Gaussian pixel noise added to training images "
        "(each image draws its own std up to this)",
        min=0,
        max=1,
    )
    pretrain_graded: float = vladv.option(
        1.0,
        "embedded model: soft contrastive targets graded by the attribute distance d of the "
        "world's records, weight exp(-beta*d) (beta; 0 = CLIP's one-hot targets)",
        min=0,
    )
    pretrain_data: Literal["real", "generated", "mixed"] = vladv.option(
        "real", "embedded model: synthetic-aerial training domain (real, generated or mixed 1:3)"
    )
    pretrain_text_init: str = vladv.option(
        "",
        f"{ALIGN_MODEL}: masked-LM folder its BERT text tower starts from (default: the "
        f"embedded vladv-tiny-mlm)",
    )


@contextlib.contextmanager
def _hf_offline(offline: bool = True):
    """Hugging Face Hub offline mode meanwhile (vladv does not download unless asked to)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - open_clip depends on huggingface_hub
        yield
        return
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = previous or offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def create_open_clip(name: str, pretrained: str = "", download: bool = False) -> nn.Module:
    """``open_clip.create_model`` with errors turned into one-line vladv errors.

    Pretrained weights must be in the local Hugging Face cache unless ``download`` is true.
    """
    if name in EMBEDDED_MODELS and name not in open_clip.list_models():
        register_embedded(name)
    if name not in open_clip.list_models() and ":" not in name:
        known = [DEFAULT_MODEL] + [m for m in open_clip.list_models() if m != DEFAULT_MODEL]
        raise OptionError(
            f"backbone 'clip': unknown open_clip model {name!r} "
            f"(e.g. {', '.join(known[:8])}, ...; see open_clip.list_models())"
        )
    try:
        with quiet_open_clip(logging.ERROR), quiet_transformers(), _hf_offline(not download):
            return open_clip.create_model(name, pretrained=pretrained or None)
    except Exception as exc:  # noqa: BLE001 - download and config errors of many types
        first = first_line(exc)
        if pretrained:
            raise CheckpointError(
                f"backbone 'clip': cannot load pretrained weights {pretrained!r} for open_clip "
                f"model {name!r} ({first}). vladv does not download at run time: pass "
                f"download=true where there is network (it fills the Hugging Face cache), "
                f"or checkpoint=PATH"
            ) from None
        raise VladvError(
            f"backbone 'clip': cannot build open_clip model {name!r}: {first}"
        ) from None


def _strip_prefix(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    keys = set(model.state_dict())
    for prefix in ("model.", "module.", "module.model."):
        if not (set(state) & keys) and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_open_clip_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local state dict (open_clip keys, or a vladv ``Backbone.save`` file) into
    ``model``."""
    state = _strip_prefix(load_state_dict(path), model)
    if "logit_scale" in state and state["logit_scale"].shape != model.logit_scale.shape:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    load_into(model, state, path, "this model")


def build_clip(options: ClipOptions, ctx: vladv.Context | None = None) -> ClipBackbone:
    """The ``clip`` backbone on ``ctx.device``, in eval mode."""
    ctx = ctx or vladv.Context()
    info: dict[str, Any] = {"model": options.model}
    embedded = options.model in EMBEDDED_MODELS
    if embedded and options.pretrained:
        raise OptionError(
            f"backbone 'clip': the embedded model {options.model!r} has no pretrained "
            "tags; leave pretrained empty or pass checkpoint=PATH"
        )
    if embedded:
        register_embedded(options.model, ctx, options.pretrain_text_init)
    model = create_open_clip(options.model, options.pretrained, options.download)
    if options.pretrained:
        info["pretrained"] = options.pretrained
    if options.checkpoint:
        load_open_clip_weights(model, options.checkpoint)
        info["checkpoint_sha256"] = file_sha256(options.checkpoint)
    elif embedded:
        path = pretrain_clip(options, ctx)
        load_open_clip_weights(model, path)
        info["weights"] = path.stem
    elif not options.pretrained:
        info["weights"] = "random"
    try:
        with _hf_offline(not options.download):
            tokenizer = get_tokenizer(options.model)
    except Exception as exc:  # noqa: BLE001 - e.g. an HF tokenizer that is not cached offline
        raise VladvError(
            f"backbone 'clip': cannot load the tokenizer of {options.model!r}: {first_line(exc)}"
        ) from None
    return ClipBackbone(model, tokenizer, info).to(ctx.device).eval()


def prepare_clip(options: ClipOptions, ctx: vladv.Context, force: bool = False) -> None:
    """Build cached artifacts ahead of time (``vladv pretrain``).

    The embedded model is pretrained unless cached (``force`` rebuilds it); an open_clip
    pretrained tag with ``download=true`` is fetched into the Hugging Face cache.
    """
    if options.model in EMBEDDED_MODELS and not options.checkpoint:
        pretrain_clip(options, ctx, force=force)
    elif options.pretrained and options.download:
        create_open_clip(options.model, options.pretrained, download=True)


def is_cached(options: ClipOptions, ctx: vladv.Context) -> bool:
    """Whether the embedded model's weights for ``options`` are already in the cache."""
    return trained_path(options, ctx).is_file()


@vladv.hookimpl
def vladv_backbones():
    yield vladv.BackboneSpec(
        name="clip",
        summary="open_clip dual encoder; embedded: vladv's tiny CLIP (default) and ALIGN-style "
        "model, pretrained on synthetic-aerial",
        options=ClipOptions,
        factory=build_clip,
        prepare=prepare_clip,
    )

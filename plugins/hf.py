"""Backbone plugin ``hf``: a Hugging Face dual encoder (CLIP, ALIGN, SigLIP, BLIP retrieval/ITC).

``model`` is a Hub name (read from the local Hugging Face cache when ``HF_HUB_OFFLINE`` /
``TRANSFORMERS_OFFLINE`` is set) or a local ``save_pretrained`` folder. This module wraps and
loads the model; its image processor configuration becomes the differentiable
:class:`HFPixelPreprocess` on [0, 1] pixels in plugins/hf_preprocess.py (PIL's resampling filters
as weight matrices, center crop, one per-channel affine map). The embeddings follow each model's
own definitions (BLIP: the ITC heads). ALIGN's ``temperature`` and BLIP's missing temperature are
exposed as a learnable log scale. See docs/backbones.md.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

import vladv
from vladv.backbone import Backbone
from vladv.cache import file_sha256
from vladv.checkpoints import load_into, load_state_dict
from vladv.errors import CheckpointError, OptionError, VladvError, first_line
from vladv.kit.hub import hub_offline, quiet_transformers
from vladv_plugins.hf_preprocess import (
    HFPixelPreprocess,
    preprocess_from_processor,
    resample_matrix,
)

__all__ = [
    "FAMILIES",
    "HFBackbone",
    "HFOptions",
    "HFPixelPreprocess",
    "build_hf",
    "preprocess_from_processor",
    "resample_matrix",
]

_LABEL = "backbone 'hf'"
Family = Literal["auto", "clip", "align", "siglip", "blip"]
FAMILIES: dict[str, str] = {
    "clip": "CLIPModel",
    "align": "AlignModel",
    "siglip": "SiglipModel",
    "blip": "BlipForImageTextRetrieval",
}
_UNUSED = ("itm_head.", "crossattention")  # BLIP weights only the ITM head uses


@dataclass(frozen=True)
class HFOptions:
    model: str = vladv.option("", "Hugging Face model name or local folder (required)")
    family: Family = vladv.option("auto", "model family (auto: from config.model_type)")
    revision: str = vladv.option("", "Hub revision: branch, tag or commit (default: main)")
    checkpoint: str = vladv.option(
        "",
        "local state dict loaded on top (.safetensors or weights-only "
        ".pt/.bin; HF keys or a vladv Backbone.save file)",
    )
    max_length: int = vladv.option(
        0, "token limit (0 = tokenizer / position-embedding default)", min=0
    )


# ----------------------------------------------------------------------------------------------
# The backbone
# ----------------------------------------------------------------------------------------------
class _Group(nn.Module):
    """Several submodules of the HF model viewed as one tower (parameters are shared)."""

    def __init__(self, **modules: nn.Module):
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)


def _pooled(out: Any) -> torch.Tensor:
    """get_*_features returned a tensor (transformers 4) or a model output (transformers 5)."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    return pooled if pooled is not None else out[1]


class HFBackbone(Backbone):
    """A Hugging Face dual encoder behind the vladv :class:`~vladv.backbone.Backbone` contract."""

    name = "hf"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        family: str,
        preprocess: HFPixelPreprocess,
        max_length: int,
        info: dict[str, Any] | None = None,
    ):
        super().__init__(preprocess.image_size, preprocess.mean.tolist(), preprocess.std.tolist())
        self.preprocess = preprocess
        self.model, self.tokenizer, self.family = model, tokenizer, family
        self.max_length = int(max_length)
        self.padding = "max_length" if family == "siglip" else "longest"
        self.info = dict(info or {})
        if family == "align":  # HF keeps a plain temperature: train its negative log
            self.log_scale = nn.Parameter(-model.temperature.detach().float().log().reshape(()))
            self.register_state_dict_pre_hook(_sync_temperature)
        elif family == "blip":  # HF's retrieval model keeps no temperature at all
            init = float(getattr(model.config, "logit_scale_init_value", math.log(1 / 0.07)))
            self.log_scale = nn.Parameter(torch.tensor(init))
        self.eval()

    # -- features ------------------------------------------------------------------------------
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        m = self.model
        if self.family == "blip":
            return m.vision_proj(m.vision_model(pixel_values=pixels)[0][:, 0, :])
        return _pooled(m.get_image_features(pixel_values=pixels))

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(texts),
            padding=self.padding,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: enc[k] for k in ("input_ids", "attention_mask") if k in enc}

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        m = self.model
        if self.family == "blip":
            out = m.text_encoder(
                input_ids=tokens["input_ids"],
                attention_mask=tokens.get("attention_mask"),
                return_dict=True,
            )
            return m.text_proj(out.last_hidden_state[:, 0, :])
        return _pooled(m.get_text_features(**tokens))

    # -- parameters ----------------------------------------------------------------------------
    @property
    def image_tower(self) -> nn.Module:
        m = self.model
        return {
            "clip": lambda: _Group(vision_model=m.vision_model, projection=m.visual_projection),
            "blip": lambda: _Group(vision_model=m.vision_model, projection=m.vision_proj),
        }.get(self.family, lambda: m.vision_model)()

    @property
    def text_tower(self) -> nn.Module:
        m = self.model
        if self.family in ("clip", "align"):
            return _Group(text_model=m.text_model, projection=m.text_projection)
        if self.family == "blip":
            return _Group(text_model=m.text_encoder, projection=m.text_proj)
        return m.text_model

    @property
    def logit_scale_param(self) -> nn.Parameter:
        if self.family in ("align", "blip"):
            return self.log_scale
        return self.model.logit_scale

    @property
    def token_embedding(self) -> nn.Module | None:
        m = self.model
        text = m.text_encoder if self.family == "blip" else getattr(m, "text_model", None)
        embeddings = getattr(text, "embeddings", None)
        for name in ("word_embeddings", "token_embedding"):
            module = getattr(embeddings, name, None)
            if isinstance(module, nn.Module):
                return module
        return None

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, **self.info}

    def hf_model(self) -> nn.Module:
        """The wrapped HF model (ALIGN's ``temperature`` synced), ready for ``save_pretrained``."""
        if self.family == "align":
            _sync_temperature(self)
        return self.model


def _sync_temperature(module: HFBackbone, *_: Any) -> None:
    with torch.no_grad():
        temp = module.model.temperature
        temp.copy_(module.log_scale.detach().neg().exp().reshape(temp.shape).to(temp.dtype))


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------
def _dtype_kwarg() -> str:
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _family(config: Any, wanted: str, name: str) -> str:
    model_type = getattr(config, "model_type", "")
    if wanted == "auto":
        if model_type not in FAMILIES:
            raise VladvError(
                f"{_LABEL}: {name!r} is a {model_type or 'unknown'!r} model, not a supported dual "
                f"encoder ({', '.join(f'{k} ({v})' for k, v in FAMILIES.items())}); "
                "pass family=... only for a compatible custom model_type"
            )
        return model_type
    if model_type in FAMILIES and model_type != wanted:
        raise VladvError(
            f"{_LABEL}: family={wanted} but {name!r} is a {model_type!r} model; "
            f"use family=auto or family={model_type}"
        )
    return wanted


def _load_checkpoint(backbone: HFBackbone, path: str) -> None:
    """Load a vladv ``Backbone.save`` file or a plain HF state dict on top of the weights."""
    state = load_state_dict(path)
    ours = set(backbone.state_dict())
    if not (set(state) & ours) and any(k.startswith("model.") for k in ours):
        state = {f"model.{k}": v for k, v in state.items()}
        if backbone.family == "align" and "model.temperature" in state:
            state["log_scale"] = -state["model.temperature"].float().log().reshape(())
    load_into(backbone, state, path, _LABEL, ignore_missing=("log_scale",))


def build_hf(options: HFOptions, ctx: vladv.Context | None = None) -> HFBackbone:
    """The ``hf`` backbone on ``ctx.device``, in eval mode, in float32."""
    ctx = ctx or vladv.Context()
    name = options.model.strip()
    if not name:
        raise OptionError(
            f"{_LABEL}: option 'model' is required: a Hugging Face model name "
            "(e.g. openai/clip-vit-base-patch32) or a local save_pretrained folder"
        )
    local = os.path.expanduser(name)
    if name.startswith(("/", "./", "../", "~", ".\\")) or os.path.isabs(local):
        if not os.path.isdir(local):
            raise VladvError(
                f"{_LABEL}: model folder {name!r} does not exist (pass a folder written "
                "by save_pretrained, or a Hugging Face model name)"
            )
        name = local
    import transformers

    where = {"revision": options.revision or None, "local_files_only": hub_offline()}
    hint = (
        "offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE): pass a local folder, or fill the "
        "Hugging Face cache where there is network"
        if where["local_files_only"]
        else "check the name, revision and network access, or pass a local folder"
    )
    with quiet_transformers(ctx.progress):
        try:
            config = transformers.AutoConfig.from_pretrained(name, **where)
        except Exception as exc:  # noqa: BLE001 - hub, OS and parsing errors of many types
            raise VladvError(
                f"{_LABEL}: cannot load model {name!r} ({first_line(exc, 300)}); {hint}"
            ) from None
        family = _family(config, options.family, name)
        cls = getattr(transformers, FAMILIES[family])
        try:
            model, info = cls.from_pretrained(
                name, output_loading_info=True, **{_dtype_kwarg(): torch.float32}, **where
            )
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(
                f"{_LABEL}: cannot load the {FAMILIES[family]} weights of "
                f"{name!r} ({first_line(exc, 300)}); {hint}"
            ) from None
        missing = sorted(
            k for k in info.get("missing_keys", ()) if not any(u in k for u in _UNUSED)
        )
        if missing:
            raise CheckpointError(
                f"{_LABEL}: {name!r} lacks {len(missing)} {FAMILIES[family]} weights "
                f"(e.g. {missing[:3]}); is it a {family} model? (set family=... or fix the folder)"
            )
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(name, **where)
        except Exception as exc:  # noqa: BLE001
            raise VladvError(
                f"{_LABEL}: cannot load the tokenizer of {name!r} ({first_line(exc, 300)}); {hint}"
            ) from None
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(name, **where)
        except Exception as exc:  # noqa: BLE001
            raise VladvError(
                f"{_LABEL}: cannot load the image processor configuration of "
                f"{name!r} ({first_line(exc, 300)}); it needs preprocessor_config.json"
            ) from None
    preprocess = preprocess_from_processor(processor)
    positions = getattr(config.text_config, "max_position_embeddings", None) or 512
    limit = getattr(tokenizer, "model_max_length", None) or positions
    max_length = min(options.max_length or int(min(limit, 1e9)), positions)
    ident: dict[str, Any] = {"model": options.model.strip(), "family": family}
    commit = getattr(config, "_commit_hash", None)
    if options.revision:
        ident["revision"] = options.revision
    if commit:
        ident["commit"] = commit
    backbone = HFBackbone(model, tokenizer, family, preprocess, max_length, ident)
    if options.checkpoint:
        _load_checkpoint(backbone, options.checkpoint)
        backbone.info["checkpoint_sha256"] = file_sha256(options.checkpoint)
    return backbone.to(ctx.device).eval()


@vladv.hookimpl
def vladv_backbones():
    yield vladv.BackboneSpec(
        name="hf",
        summary="Hugging Face dual encoder (CLIP, ALIGN, SigLIP, BLIP ITC) by name or local folder",
        options=HFOptions,
        factory=build_hf,
    )

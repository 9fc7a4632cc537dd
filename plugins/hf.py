"""Backbone plugin ``hf``: a Hugging Face dual encoder (CLIP, ALIGN, SigLIP, BLIP retrieval/ITC).

``model`` is a Hub name (read from the local Hugging Face cache when ``HF_HUB_OFFLINE`` /
``TRANSFORMERS_OFFLINE`` is set) or a local ``save_pretrained`` folder. The model's image
processor configuration becomes the differentiable :class:`HFPixelPreprocess` on [0, 1] pixels
(PIL's resampling filters as weight matrices, center crop, one per-channel affine map); the
embeddings follow each model's own definitions (BLIP: the ITC heads). ALIGN's ``temperature`` and
BLIP's missing temperature are exposed as a learnable log scale. See docs/backbones.md.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

import vladv
from vladv.backbone import Backbone, PixelPreprocess
from vladv.cache import file_sha256
from vladv.checkpoints import load_into, load_state_dict
from vladv.errors import CheckpointError, OptionError, VladvError
from vladv.kit.hub import quiet_transformers

__all__ = ["FAMILIES", "HFBackbone", "HFOptions", "HFPixelPreprocess", "build_hf",
           "preprocess_from_processor", "resample_matrix"]

_LABEL = "backbone 'hf'"
Family = Literal["auto", "clip", "align", "siglip", "blip"]
FAMILIES: dict[str, str] = {"clip": "CLIPModel", "align": "AlignModel", "siglip": "SiglipModel",
                            "blip": "BlipForImageTextRetrieval"}
_UNUSED = ("itm_head.", "crossattention")  # BLIP weights only the ITM head uses
# PIL resampling codes (and torchvision InterpolationMode values) → PIL filter names
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_RESAMPLE_NAMES = {"nearest": 0, "nearest-exact": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3,
                   "box": 4, "hamming": 5}


@dataclass(frozen=True)
class HFOptions:
    model: str = vladv.option("", "Hugging Face model name or local folder (required)")
    family: Family = vladv.option("auto", "model family (auto: from config.model_type)")
    revision: str = vladv.option("", "Hub revision: branch, tag or commit (default: main)")
    checkpoint: str = vladv.option("", "local state dict loaded on top (.safetensors or weights-only "
                                       ".pt/.bin; HF keys or a vladv Backbone.save file)")
    max_length: int = vladv.option(0, "token limit (0 = tokenizer / position-embedding default)",
                                   min=0)


# ----------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------
def _filter(name: str, x: torch.Tensor) -> torch.Tensor:
    """PIL's resampling filters (libImaging/Resample.c) evaluated at ``x``."""
    ax = x.abs()
    if name == "box":
        return ((x > -0.5) & (x <= 0.5)).to(x.dtype)
    if name == "bilinear":
        return (1 - ax).clamp(min=0)
    if name == "hamming":
        return torch.where(ax < 1, torch.sinc(x) * (0.54 + 0.46 * torch.cos(math.pi * x)), 0 * x)
    if name == "lanczos":
        return torch.where((x >= -3) & (x < 3), torch.sinc(x) * torch.sinc(x / 3), 0 * x)
    a = -0.5  # bicubic, as PIL
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = (((ax - 5) * ax + 8) * ax - 4) * a
    return torch.where(ax < 1, near, torch.where(ax < 2, far, 0 * x))


_SUPPORT = {"box": 0.5, "bilinear": 1.0, "hamming": 1.0, "bicubic": 2.0, "lanczos": 3.0}


@functools.lru_cache(maxsize=64)
def resample_matrix(in_size: int, out_size: int, mode: str) -> torch.Tensor:
    """(out, in) float64 weights of PIL's 1-D resampling (antialiased when shrinking)."""
    scale = in_size / out_size
    centers = (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale
    src = torch.arange(in_size, dtype=torch.float64)
    if mode == "nearest":
        idx = centers.floor().long().clamp(max=in_size - 1)
        return F.one_hot(idx, in_size).to(torch.float64)
    fscale = max(scale, 1.0)
    support = _SUPPORT[mode] * fscale
    lo = (centers - support + 0.5).floor().clamp(min=0)
    hi = (centers + support + 0.5).floor().clamp(max=in_size)
    inside = (src[None] >= lo[:, None]) & (src[None] < hi[:, None])
    w = _filter(mode, (src[None] - centers[:, None] + 0.5) / fscale) * inside
    total = w.sum(1, keepdim=True)
    return torch.where(total != 0, w / torch.where(total != 0, total, 1), w)


class HFPixelPreprocess(PixelPreprocess):
    """[0, 1] pixels → resize (to height × width, or the shortest edge), center crop, per-channel
    affine normalization, differentiable.

    Resizing reproduces PIL's resampling (which transformers' PIL image processors call and its
    torchvision ones reimplement for uint8 on the CPU): separable weight matrices of PIL's filters,
    antialiased when shrinking, horizontal pass then vertical pass, each clamped to [0, 1] like
    PIL's 8-bit intermediate (only the rounding to 8 bits is left out, so gradients flow).
    """

    def __init__(self, resize: tuple[int, int] | int | None, crop: tuple[int, int] | None,
                 mean: Sequence[float], std: Sequence[float], mode: str = "bicubic"):
        if isinstance(resize, int):
            size = crop[0] if crop else resize
        else:
            size = crop[0] if crop else (resize[0] if resize else 224)
        super().__init__(size, mean, std, mode)
        self.resize, self.crop = resize, crop

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Size after resizing (before the crop) of an ``h`` × ``w`` input."""
        if self.resize is None:
            return h, w
        if not isinstance(self.resize, int):
            return tuple(self.resize)  # type: ignore[return-value]
        s = self.resize  # shortest edge, as transformers' get_resize_output_image_size
        if (h <= w and h == s) or (w <= h and w == s):
            return h, w
        return (int(s * h / w), s) if w < h else (s, int(s * w / h))

    def _resample(self, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = images.shape[-2:]
        clamp = self.interpolation in ("bicubic", "lanczos")
        if size[1] != w:
            mat = resample_matrix(w, size[1], self.interpolation).to(images.device, images.dtype)
            images = images @ mat.T
            images = images.clamp(0, 1) if clamp else images
        if size[0] != h:
            mat = resample_matrix(h, size[0], self.interpolation).to(images.device, images.dtype)
            images = mat @ images
            images = images.clamp(0, 1) if clamp else images
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = self._resample(images, self.output_size(*images.shape[-2:]))
        if self.crop is not None:  # transformers' center_crop: pad with zeros when too small
            ch, cw = self.crop
            h, w = images.shape[-2:]
            if ch > h or cw > w:
                pw, ph = max(cw - w, 0), max(ch - h, 0)
                images = F.pad(images, (pw // 2, (pw + 1) // 2, ph // 2, (ph + 1) // 2))
                h, w = images.shape[-2:]
            top, left = int((h - ch) / 2.0), int((w - cw) / 2.0)
            images = images[..., top:top + ch, left:left + cw]
        mean = self.mean.to(images.dtype).view(1, -1, 1, 1)
        std = self.std.to(images.dtype).view(1, -1, 1, 1)
        return (images - mean) / std


def _field(obj: Any, key: str) -> Any:
    if obj is None or isinstance(obj, int):
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _channels(value: Any, default: float) -> list[float]:
    if value is None:
        return [default] * 3
    if isinstance(value, int | float):
        return [float(value)] * 3
    return [float(v) for v in value]


def _resample_mode(resample: Any) -> str:
    if resample is None:
        return "bilinear"
    name = getattr(resample, "value", resample)
    if isinstance(name, str):  # torchvision InterpolationMode
        name = _RESAMPLE_NAMES.get(name.lower(), 3)
    return _RESAMPLE.get(int(name), "bicubic")


def preprocess_from_processor(proc: Any) -> HFPixelPreprocess:
    """The differentiable equivalent of an HF image processor (CLIP, SigLIP, BLIP, EfficientNet)."""
    size, crop_size = getattr(proc, "size", None), getattr(proc, "crop_size", None)
    resize: tuple[int, int] | int | None = None
    if getattr(proc, "do_resize", True) and size is not None:
        if isinstance(size, int):
            square = getattr(proc, "default_to_square", True)
            resize = (size, size) if square else size
        elif _field(size, "shortest_edge"):
            if _field(size, "longest_edge"):
                raise VladvError(f"{_LABEL}: image processors that bound the longest edge "
                                 f"({type(proc).__name__}) are not supported")
            resize = int(_field(size, "shortest_edge"))
        elif _field(size, "height") and _field(size, "width"):
            resize = (int(_field(size, "height")), int(_field(size, "width")))
        else:
            raise VladvError(f"{_LABEL}: cannot read the resize size {size!r} of "
                             f"{type(proc).__name__}")
    crop = None
    if getattr(proc, "do_center_crop", False) and crop_size is not None:
        if isinstance(crop_size, int):
            crop = (crop_size, crop_size)
        else:
            crop = (int(_field(crop_size, "height")), int(_field(crop_size, "width")))
    # value the model sees = (a·x + b − mean) / std [/ std again: EfficientNet include_top]
    factor = float(getattr(proc, "rescale_factor", 1 / 255)) if getattr(proc, "do_rescale", True) \
        else 1.0
    a = 255.0 * factor
    b = -1.0 if getattr(proc, "do_rescale", True) and getattr(proc, "rescale_offset", False) else 0.0
    if getattr(proc, "do_normalize", True):
        mean, std = _channels(proc.image_mean, 0.0), _channels(proc.image_std, 1.0)
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    if getattr(proc, "include_top", False):
        std = [s * t for s, t in zip(std, _channels(proc.image_std, 1.0))]
    return HFPixelPreprocess(resize, crop, [(m - b) / a for m in mean], [s / a for s in std],
                             _resample_mode(getattr(proc, "resample", None)))


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

    def __init__(self, model: nn.Module, tokenizer: Any, family: str,
                 preprocess: HFPixelPreprocess, max_length: int, info: dict[str, Any] | None = None):
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
        enc = self.tokenizer(list(texts), padding=self.padding, truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {k: enc[k] for k in ("input_ids", "attention_mask") if k in enc}

    def text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        m = self.model
        if self.family == "blip":
            out = m.text_encoder(input_ids=tokens["input_ids"],
                                 attention_mask=tokens.get("attention_mask"), return_dict=True)
            return m.text_proj(out.last_hidden_state[:, 0, :])
        return _pooled(m.get_text_features(**tokens))

    # -- parameters ----------------------------------------------------------------------------
    @property
    def image_tower(self) -> nn.Module:
        m = self.model
        return {"clip": lambda: _Group(vision_model=m.vision_model, projection=m.visual_projection),
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
def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


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
                f"encoder ({', '.join(f'{k} ({v})' for k, v in FAMILIES.items())}); pass family=... "
                "only for a compatible custom model_type")
        return model_type
    if model_type in FAMILIES and model_type != wanted:
        raise VladvError(f"{_LABEL}: family={wanted} but {name!r} is a {model_type!r} model; "
                         f"use family=auto or family={model_type}")
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
        raise OptionError(f"{_LABEL}: option 'model' is required: a Hugging Face model name "
                          "(e.g. openai/clip-vit-base-patch32) or a local save_pretrained folder")
    local = os.path.expanduser(name)
    if name.startswith(("/", "./", "../", "~", ".\\")) or os.path.isabs(local):
        if not os.path.isdir(local):
            raise VladvError(f"{_LABEL}: model folder {name!r} does not exist (pass a folder written "
                             "by save_pretrained, or a Hugging Face model name)")
        name = local
    import transformers

    where = {"revision": options.revision or None, "local_files_only": _offline()}
    hint = ("offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE): pass a local folder, or fill the "
            "Hugging Face cache where there is network" if where["local_files_only"]
            else "check the name, revision and network access, or pass a local folder")
    with quiet_transformers(ctx.progress):
        try:
            config = transformers.AutoConfig.from_pretrained(name, **where)
        except Exception as exc:  # noqa: BLE001 - hub, OS and parsing errors of many types
            raise VladvError(f"{_LABEL}: cannot load model {name!r} ({_first_line(exc)}); "
                             f"{hint}") from None
        family = _family(config, options.family, name)
        cls = getattr(transformers, FAMILIES[family])
        try:
            model, info = cls.from_pretrained(name, output_loading_info=True,
                                              **{_dtype_kwarg(): torch.float32}, **where)
        except Exception as exc:  # noqa: BLE001
            raise CheckpointError(f"{_LABEL}: cannot load the {FAMILIES[family]} weights of "
                                  f"{name!r} ({_first_line(exc)}); {hint}") from None
        missing = sorted(k for k in info.get("missing_keys", ()) if not any(u in k for u in _UNUSED))
        if missing:
            raise CheckpointError(
                f"{_LABEL}: {name!r} lacks {len(missing)} {FAMILIES[family]} weights "
                f"(e.g. {missing[:3]}); is it a {family} model? (set family=... or fix the folder)")
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(name, **where)
        except Exception as exc:  # noqa: BLE001
            raise VladvError(f"{_LABEL}: cannot load the tokenizer of {name!r} "
                             f"({_first_line(exc)}); {hint}") from None
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(name, **where)
        except Exception as exc:  # noqa: BLE001
            raise VladvError(f"{_LABEL}: cannot load the image processor configuration of "
                             f"{name!r} ({_first_line(exc)}); it needs preprocessor_config.json"
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

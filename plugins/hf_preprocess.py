"""The ``hf`` backbone's pixel preprocessing: a Hugging Face image processor's configuration as a
differentiable :class:`HFPixelPreprocess` on [0, 1] pixels.

PIL's resampling filters become weight matrices (:func:`resample_matrix`), followed by the center
crop and one per-channel affine map, so attacks perturb pixels and gradients flow through the
preprocessing. A private helper of the ``hf`` plugin (plugins/hf.py), which loads the models.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from vladv.backbone import PixelPreprocess
from vladv.errors import VladvError

__all__ = ["HFPixelPreprocess", "preprocess_from_processor", "resample_matrix"]

_LABEL = "backbone 'hf'"
# PIL resampling codes (and torchvision InterpolationMode values) → PIL filter names
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_RESAMPLE_NAMES = {
    "nearest": 0,
    "nearest-exact": 0,
    "lanczos": 1,
    "bilinear": 2,
    "bicubic": 3,
    "box": 4,
    "hamming": 5,
}


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

    def __init__(
        self,
        resize: tuple[int, int] | int | None,
        crop: tuple[int, int] | None,
        mean: Sequence[float],
        std: Sequence[float],
        mode: str = "bicubic",
    ):
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
            images = images[..., top : top + ch, left : left + cw]
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
                raise VladvError(
                    f"{_LABEL}: image processors that bound the longest edge "
                    f"({type(proc).__name__}) are not supported"
                )
            resize = int(_field(size, "shortest_edge"))
        elif _field(size, "height") and _field(size, "width"):
            resize = (int(_field(size, "height")), int(_field(size, "width")))
        else:
            raise VladvError(
                f"{_LABEL}: cannot read the resize size {size!r} of {type(proc).__name__}"
            )
    crop = None
    if getattr(proc, "do_center_crop", False) and crop_size is not None:
        if isinstance(crop_size, int):
            crop = (crop_size, crop_size)
        else:
            crop = (int(_field(crop_size, "height")), int(_field(crop_size, "width")))
    # value the model sees = (a·x + b − mean) / std [/ std again: EfficientNet include_top]
    factor = (
        float(getattr(proc, "rescale_factor", 1 / 255))
        if getattr(proc, "do_rescale", True)
        else 1.0
    )
    a = 255.0 * factor
    b = (
        -1.0
        if getattr(proc, "do_rescale", True) and getattr(proc, "rescale_offset", False)
        else 0.0
    )
    if getattr(proc, "do_normalize", True):
        mean, std = _channels(proc.image_mean, 0.0), _channels(proc.image_std, 1.0)
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    if getattr(proc, "include_top", False):
        std = [s * t for s, t in zip(std, _channels(proc.image_std, 1.0))]
    return HFPixelPreprocess(
        resize,
        crop,
        [(m - b) / a for m in mean],
        [s / a for s in std],
        _resample_mode(getattr(proc, "resample", None)),
    )

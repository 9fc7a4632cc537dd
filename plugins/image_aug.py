"""Augmenter plugin ``image-aug``: random resized crop, horizontal flip and color jitter (kornia).

Every random parameter is drawn from the generator passed to :meth:`ImageAug.transform_images`
(on the generator's device, then moved to the images), and the image operations are kornia's
functional ops applied to the whole batch on the images' device. So the same generator state gives
the same augmented batch, whatever the global RNG does; kornia's own samplers (which use the global
RNG) are never used.

Semantics follow torchvision / kornia ``RandomResizedCrop`` (area ``scale``, aspect ``ratio``,
ten attempts, then the whole image) and ``ColorJitter`` (brightness, contrast and saturation
factors in ``[max(0, 1 − s), 1 + s]``, hue shift in ``[−h, h]`` turns), applied in the fixed order
crop → flip → brightness → contrast → saturation → hue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import kornia
import torch

import vladv
from vladv.kit.pools import augment_images
from vladv.options import option
from vladv.types import Augmenter, Context

__all__ = ["ImageAug", "ImageAugOptions", "augment_images", "sample_crop_boxes", "vladv_augmenters"]
# augment_images lives in the kit (vladv.kit.pools); it stays importable from here.

_ATTEMPTS = 10


@dataclass(frozen=True)
class ImageAugOptions:
    scale: tuple[float, ...] = option(
        (0.9, 1.0), "random resized crop: area range (share of the image)", min=0.01, max=1
    )
    ratio: tuple[float, ...] = option(
        (3 / 4, 4 / 3), "random resized crop: aspect-ratio range", min=0.1, max=10
    )
    flip_p: float = option(
        0.0,
        "probability of a horizontal flip (captions that say left/right become wrong)",
        min=0,
        max=1,
    )
    brightness: float = option(0.2, "brightness factor in [1 − s, 1 + s]; 0 disables", min=0, max=1)
    contrast: float = option(0.2, "contrast factor in [1 − s, 1 + s]; 0 disables", min=0, max=1)
    saturation: float = option(0.2, "saturation factor in [1 − s, 1 + s]; 0 disables", min=0, max=1)
    hue: float = option(0.02, "hue shift in [−h, h] turns; 0 disables", min=0, max=0.5)

    def __post_init__(self) -> None:
        for name in ("scale", "ratio"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
                raise ValueError(
                    f"{name} must be two numbers LOW,HIGH with LOW <= HIGH; got {lo_hi}"
                )


def _uniform(
    shape: Sequence[int],
    lo: float,
    hi: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    where = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(tuple(shape), generator=generator, device=where, dtype=torch.float32)
    return (lo + (hi - lo) * u).to(device)


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: Sequence[float],
    ratio: Sequence[float],
    generator: torch.Generator | None,
) -> torch.Tensor:
    """RandomResizedCrop boxes (n, 4, 2) of (x, y) corners (tl, tr, br, bl), on the CPU.

    Per image: up to ten (area, log-aspect) draws; the first crop that fits is placed uniformly;
    when none fits, the whole image.
    """
    cpu = torch.device("cpu")
    area = height * width
    target = area * _uniform((n, _ATTEMPTS), scale[0], scale[1], generator, cpu)
    aspect = torch.exp(
        _uniform((n, _ATTEMPTS), math.log(ratio[0]), math.log(ratio[1]), generator, cpu)
    )
    pos = _uniform((n, _ATTEMPTS, 2), 0.0, 1.0, generator, cpu)
    w = torch.sqrt(target * aspect).round()
    h = torch.sqrt(target / aspect).round()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    boxes = torch.empty(n, 4, 2)
    for i in range(n):
        a = int(first[i])
        if a < 0:
            x0, y0, cw, ch = 0.0, 0.0, float(width), float(height)
        else:
            cw, ch = float(w[i, a]), float(h[i, a])
            x0 = math.floor(float(pos[i, a, 0]) * (width - cw + 1))
            y0 = math.floor(float(pos[i, a, 1]) * (height - ch + 1))
        x1, y1 = x0 + cw - 1, y0 + ch - 1
        boxes[i] = torch.tensor([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return boxes


class ImageAug(Augmenter):
    """Random resized crop + horizontal flip + color jitter, batched on the images' device."""

    name = "image-aug"
    modality = "image"

    def transform_images(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augmented copies (same shape, in [0, 1]) of ``images`` (B, 3, H, W); no gradients."""
        o = self.options
        with torch.no_grad():
            x = images.detach().float()
            n, _, height, width = x.shape
            dev = x.device
            boxes = sample_crop_boxes(n, height, width, o.scale, o.ratio, generator).to(dev)
            x = kornia.geometry.transform.crop_and_resize(
                x, boxes, (height, width), mode="bilinear", align_corners=True
            )
            flip = _uniform((n,), 0.0, 1.0, generator, dev) < o.flip_p
            x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
            x = _jitter(x, o, generator)
        return x.clamp(0, 1).to(images.dtype)


def _jitter(x: torch.Tensor, o: ImageAugOptions, generator: torch.Generator | None) -> torch.Tensor:
    n, dev = x.shape[0], x.device
    # draw every factor (fixed count) so the stream does not depend on which ops are enabled
    b = _uniform((n,), max(0.0, 1 - o.brightness), 1 + o.brightness, generator, dev)
    c = _uniform((n,), max(0.0, 1 - o.contrast), 1 + o.contrast, generator, dev)
    s = _uniform((n,), max(0.0, 1 - o.saturation), 1 + o.saturation, generator, dev)
    h = _uniform((n,), -o.hue, o.hue, generator, dev)
    enhance = kornia.enhance
    if o.brightness > 0:
        x = enhance.adjust_brightness_accumulative(x, b)
    if o.contrast > 0:
        x = enhance.adjust_contrast_with_mean_subtraction(x, c)
    if o.saturation > 0:
        x = enhance.adjust_saturation_with_gray_subtraction(x, s)
    if o.hue > 0:
        x = enhance.adjust_hue(x, h * 2 * math.pi)
    return x


def _build(options: ImageAugOptions, ctx: Context) -> ImageAug:
    return ImageAug(options, ctx)


@vladv.hookimpl
def vladv_augmenters():
    yield vladv.AugmenterSpec(
        name="image-aug",
        summary="kornia random resized crop, horizontal flip and color jitter",
        options=ImageAugOptions,
        factory=_build,
        modality="image",
    )

"""image-aug: kornia crop / flip / jitter with randomness from the given generator only."""

from __future__ import annotations

import pytest
import torch

import vladv
from vladv.errors import OptionError
from vladv.options import resolve_options
from vladv_plugins.image_aug import ImageAug, ImageAugOptions, augment_images, sample_crop_boxes

CTX = vladv.Context()


def _aug(**kw) -> ImageAug:
    return ImageAug(resolve_options("augmenter 'image-aug'", ImageAugOptions, kw), CTX)


def _images(n: int = 6, size: int = 24) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_shape_range_and_no_gradients():
    x = _images().requires_grad_(True)
    out = _aug().transform_images(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert not out.requires_grad and x.grad is None
    assert not torch.equal(out, x.detach())


def test_same_generator_seed_same_output_whatever_the_global_rng():
    x, aug = _images(), _aug()
    torch.manual_seed(1)
    a = aug.transform_images(x, torch.Generator().manual_seed(5))
    torch.manual_seed(2)
    torch.rand(10)
    b = aug.transform_images(x, torch.Generator().manual_seed(5))
    c = aug.transform_images(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert (a - c).abs().amax(dim=(1, 2, 3)).min() > 0  # every image differs


def test_identity_settings_and_exact_flip():
    x = _images()
    off = dict(scale="1,1", ratio="1,1", brightness=0, contrast=0, saturation=0, hue=0)
    same = _aug(flip_p=0, **off).transform_images(x, torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-4)
    flipped = _aug(flip_p=1, **off).transform_images(x, torch.Generator().manual_seed(0))
    assert torch.allclose(flipped, x.flip(-1), atol=1e-4)


def test_crop_boxes_respect_scale_and_bounds():
    boxes = sample_crop_boxes(
        200, 32, 48, (0.3, 0.6), (0.75, 1.333), torch.Generator().manual_seed(0)
    )
    x0, y0 = boxes[:, 0, 0], boxes[:, 0, 1]
    x1, y1 = boxes[:, 2, 0], boxes[:, 2, 1]
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 47).all() and (y1 <= 31).all()
    area = (x1 - x0 + 1) * (y1 - y0 + 1) / (32 * 48)
    assert area.min() > 0.25 and area.max() < 0.66


def test_options_are_validated():
    assert _aug().options.scale == (0.9, 1.0) and _aug().options.flip_p == 0
    with pytest.raises(OptionError, match="scale"):
        _aug(scale="0.9,0.5")
    with pytest.raises(OptionError, match="flip_p"):
        _aug(flip_p=2)


def test_augment_images_applies_only_image_augmenters():
    class Text(vladv.Augmenter):
        modality = "text"

        def transform_images(self, images, generator):
            raise AssertionError("text augmenters are skipped")

    x = _images(2)
    out = augment_images([Text(None, CTX), _aug()], x, torch.Generator().manual_seed(0))
    assert torch.equal(out, _aug().transform_images(x, torch.Generator().manual_seed(0)))
    assert _aug().texts_for(_FakeDataset()) == [[], []]


class _FakeDataset:
    def __len__(self) -> int:
        return 2

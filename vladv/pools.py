"""Caption pools for the 1:N relationship: per-image new captions, deterministic and cached.

A text augmenter subclasses :class:`PoolAugmenter` (set ``name``, implement ``generate``);
defenses merge every text augmenter's captions with :func:`build_text_pool`. Pools never contain
an image's ground-truth captions (compared by :func:`caption_key`), are keyed by the augmenter,
its options, the dataset's identity and the seed, and are cached under ``VLADV_HOME/pools``.
"""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from vladv.cache import atomic_write_json, config_hash
from vladv.console import get_console
from vladv.errors import VladvError
from vladv.options import options_to_dict
from vladv.seeds import derive_seed
from vladv.types import Augmenter, ImageTextDataset

POOL_FORMAT = 1


def caption_key(text: str) -> str:
    """Comparison key of a caption: lower-case letters and digits, single spaces."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def dedupe_captions(
    candidates: Sequence[str], ground_truth: Sequence[str] = (), limit: int | None = None
) -> list[str]:
    """``candidates`` in order without empties, repeats and ground-truth captions (by key)."""
    seen = {caption_key(t) for t in ground_truth}
    out: list[str] = []
    for text in candidates:
        key = caption_key(text)
        if key and key not in seen:
            seen.add(key)
            out.append(text.strip())
            if limit is not None and len(out) >= limit:
                break
    return out


def image_seed(seed: int, index: int, *salt: Any) -> int:
    """A 63-bit seed for image ``index`` (pools do not depend on dataset order or size)."""
    return derive_seed(seed, index, *salt)


class PoolAugmenter(Augmenter):
    """A text augmenter whose per-image caption pools are deterministic and cached.

    Subclasses set ``name`` and implement :meth:`generate` (raw candidates per image); the pool
    cache key is ``config_hash`` of {augmenter, options, dataset.describe(), seed} plus
    :meth:`identity_extra` (e.g. the captioning model's identity).
    """

    name: ClassVar[str] = "pool"
    modality = "text"

    @property
    def seed(self) -> int:
        seed = getattr(self.options, "seed", -1)
        return self.ctx.seed if seed is None or seed < 0 else int(seed)

    def identity_extra(self) -> dict[str, Any]:
        return {}

    def pool_identity(self, dataset: ImageTextDataset) -> dict[str, Any]:
        return {
            "augmenter": self.name,
            "format": POOL_FORMAT,
            "options": options_to_dict(self.options),
            "dataset": dataset.describe(),
            "seed": self.seed,
            **self.identity_extra(),
        }

    def pool_path(self, dataset: ImageTextDataset) -> Path:
        key = config_hash(self.pool_identity(dataset))
        return self.ctx.cache_dir("pools") / f"{self.name}-{dataset.split}-{key}.json"

    @abstractmethod
    def generate(self, dataset: ImageTextDataset) -> list[list[str]]:
        """Raw candidate captions per image (deduplicated by :meth:`texts_for`)."""

    def texts_for(self, dataset: ImageTextDataset) -> list[list[str]]:
        """New captions per image (never its ground truth), from the cache or generated."""
        path = self.pool_path(dataset)
        if path.is_file():
            try:
                pools = json.loads(path.read_text())["pools"]
                if len(pools) == len(dataset):
                    return pools
            except (ValueError, KeyError, TypeError):
                pass  # a broken cache file is rebuilt
        raw = self.generate(dataset)
        pools = [
            dedupe_captions(cands, [dataset.captions[t] for t in dataset.img2txt[i]])
            for i, cands in enumerate(raw)
        ]
        atomic_write_json(path, {"identity": self.pool_identity(dataset), "pools": pools})
        sizes = [len(p) for p in pools]
        get_console(self.ctx).print(
            f"[dim]{self.name}: {sum(sizes)} new captions for {len(pools)} images "
            f"({sum(sizes) / max(1, len(pools)):.1f} per image), cached as {path.name}[/]"
        )
        return pools


def build_text_pool(augmenters: Sequence[Augmenter], dataset: ImageTextDataset) -> list[list[str]]:
    """Per image, the new captions of every text augmenter, merged in order and deduplicated
    against the image's ground truth and each other (the ground truth itself is not included)."""
    merged: list[list[str]] = [[] for _ in range(len(dataset))]
    for aug in augmenters:
        if getattr(aug, "modality", "text") != "text":
            continue
        pools = aug.texts_for(dataset)
        if len(pools) != len(dataset):
            raise VladvError(
                f"augmenter {type(aug).__name__} returned {len(pools)} pools for "
                f"{len(dataset)} images"
            )
        for i, extra in enumerate(pools):
            merged[i].extend(extra)
    return [
        dedupe_captions(m, [dataset.captions[t] for t in dataset.img2txt[i]])
        for i, m in enumerate(merged)
    ]


def augment_images(
    augmenters: Sequence[Augmenter], images: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``images`` through every image augmenter in order (text augmenters are skipped)."""
    for aug in augmenters:
        if getattr(aug, "modality", "text") == "image":
            images = aug.transform_images(images, generator)
    return images

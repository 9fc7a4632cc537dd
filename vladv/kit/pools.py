"""Augmenters' output for defenses (MAT's 1:N pairs); docs/kit.md, details in :mod:`vladv.pools`.

- :class:`PoolAugmenter`: base class of text augmenters (set ``name``, implement ``generate``);
  pools are deterministic per image, deduplicated and cached.
- :func:`build_text_pool`: each image's new captions from every text augmenter, merged and
  deduplicated against its ground truth.
- :func:`augment_images`: a batch through every image augmenter, in order (defenses' views);
- :func:`caption_key` / :func:`dedupe_captions`: the comparison key of captions and the
  deduplication rule; :func:`image_seed`: a per-image seed (pools do not depend on order or size).
"""

from vladv.pools import (
    PoolAugmenter,
    augment_images,
    build_text_pool,
    caption_key,
    dedupe_captions,
    image_seed,
)

__all__ = [
    "PoolAugmenter",
    "augment_images",
    "build_text_pool",
    "caption_key",
    "dedupe_captions",
    "image_seed",
]

"""Seeds: every random stream vladv draws is seeded from the run seed and salts naming the draw.

:func:`derive_seed` is the one recipe (``Context.generator``, the training steps' generators and
the caption pools' per-image seeds all use it); :func:`seed_everything` seeds the global
generators before a model is built or an attack evaluated.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

SEED_BITS = 63


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` (e.g. the run seed, a step or image index, salt strings): the
    first 8 bytes, little-endian, of the sha256 of ``repr(parts)``; the same parts give the same
    seed on every machine and in every process."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**SEED_BITS - 1)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)

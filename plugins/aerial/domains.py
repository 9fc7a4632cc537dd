"""The two image domains of synthetic-aerial: ``real`` (a camera) and ``generated`` (a generator).

``real`` stands in for RSICD photographs: per-image illumination (colour temperature, a brightness
gradient across the scene), optical blur, sensor noise and JPEG compression, each drawn per image.
``generated`` stands in for a text-to-image generator's output: smoother textures, a palette shift
(more saturation, a warm cast) and faint repeated patterns (tiling artefacts); no sensor noise.
Both work on one (S, S, 3) uint8 image with the generator given, so results are bit-identical.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

DOMAINS = ("real", "generated")


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (S, S, C) float image (reflect padding)."""
    if sigma < 0.2:
        return img
    radius = max(1, int(np.ceil(2.5 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    pad = np.pad(img, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    n = img.shape[0]
    rows = sum(k[i] * pad[i : i + n, :, :] for i in range(len(k)))
    return sum(k[i] * rows[:, i : i + n, :] for i in range(len(k)))


def camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A photograph's look: illumination, blur, sensor noise, JPEG (uint8 in, uint8 out)."""
    x = img.astype(np.float32) / 255.0
    s = x.shape[0]
    gain = 1.0 + rng.uniform(-0.07, 0.07, 3).astype(np.float32)  # colour temperature
    theta = rng.uniform(0, 2 * np.pi)
    c = (np.arange(s, dtype=np.float32) + 0.5) / s - 0.5
    ramp = np.cos(theta) * c[None, :] + np.sin(theta) * c[:, None]
    x = x * gain * (1.0 + rng.uniform(0.0, 0.25) * ramp)[..., None] * rng.uniform(0.85, 1.12)
    x = _gaussian_blur(x, float(rng.uniform(0.0, 0.5)))
    x = x + rng.uniform(0.004, 0.02) * rng.standard_normal(x.shape).astype(np.float32)
    out = (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(70, 96)))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)


def generator_look(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A generator's look: smooth textures, saturated warm palette, faint repeated patterns."""
    x = img.astype(np.float32) / 255.0
    s = x.shape[0]
    x = _gaussian_blur(x, float(rng.uniform(0.6, 1.0)))
    x = x + 0.6 * (x - _gaussian_blur(x, 2.0))  # crisp edges over smooth areas
    gray = x.mean(axis=-1, keepdims=True)
    x = gray + rng.uniform(1.2, 1.4) * (x - gray)  # saturation
    x = x * np.array((1.05, 1.0, 0.92), dtype=np.float32)  # warm cast
    shift = int(rng.integers(s // 5, s // 3))
    x = 0.88 * x + 0.12 * np.roll(x, (shift, shift), axis=(0, 1))  # tiling artefact
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def apply_domain(img: np.ndarray, domain: str, rng: np.random.Generator) -> np.ndarray:
    """``img`` as the ``domain`` ("real" or "generated") would show it."""
    return camera(img, rng) if domain == "real" else generator_look(img, rng)

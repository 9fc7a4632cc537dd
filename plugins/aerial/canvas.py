"""Drawing primitives of synthetic-aerial: an anti-aliased numpy canvas, textures and objects.

Shapes are anti-aliased signed-distance coverages over the whole pixel grid (one array operation
per shape, never a per-pixel Python loop). Everything random comes from the generator passed in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from vladv_plugins.aerial.world import REGIONS

Color = tuple[float, float, float] | np.ndarray


class Canvas:
    """An (S, S, 3) float32 image with unit coordinates ``X``, ``Y`` (pixel centres, y down)."""

    def __init__(self, size: int):
        self.S = size
        c = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.Y, self.X = np.meshgrid(c, c, indexing="ij")
        self.img = np.zeros((size, size, 3), dtype=np.float32)
        self.scale = 1.0

    @contextlib.contextmanager
    def zoom(self, cx: float, cy: float, scale: float) -> Iterator[None]:
        """Meanwhile, shapes drawn are ``scale`` times their size around (cx, cy)."""
        X, Y, old = self.X, self.Y, self.scale
        self.X, self.Y = cx + (X - cx) / scale, cy + (Y - cy) / scale
        self.scale = old * scale
        try:
            yield
        finally:
            self.X, self.Y, self.scale = X, Y, old

    def cov(self, sd: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage of the region where the signed distance ``sd`` is negative."""
        return np.clip(0.5 - sd * (self.S * self.scale), 0.0, 1.0)

    def paint(self, sd: np.ndarray, color: Color, alpha: float = 1.0) -> None:
        a = self.cov(sd)[..., None] * alpha
        self.img += a * (np.asarray(color, dtype=np.float32) - self.img)

    def fill(self, color: Color) -> None:
        self.img[:] = np.asarray(color, dtype=np.float32)

    # -- signed distances ------------------------------------------------------------------
    def local(self, cx: float, cy: float, theta: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = self.X - cx, self.Y - cy
        c, s = np.cos(theta), np.sin(theta)
        return dx * c + dy * s, -dx * s + dy * c

    def box(self, cx, cy, hw, hh, theta=0.0) -> np.ndarray:
        u, v = self.local(cx, cy, theta)
        return np.maximum(np.abs(u) - hw, np.abs(v) - hh)

    def ellipse(self, cx, cy, a, b, theta=0.0) -> np.ndarray:
        u, v = self.local(cx, cy, theta)
        return (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * min(a, b)

    def band(
        self,
        axis: str,
        center: float,
        half: float,
        wobble: float = 0.0,
        freq: float = 1.0,
        phase: float = 0.0,
    ) -> np.ndarray:
        """A (wavy) band: horizontal ('h'), vertical ('v') or diagonal ('d', top left → bottom
        right)."""
        if axis == "h":
            along, across = self.X, self.Y - center
        elif axis == "v":
            along, across = self.Y, self.X - center
        else:
            along, across = (self.X + self.Y) / np.sqrt(2), (self.Y - self.X) / np.sqrt(2) - center
        return np.abs(across - wobble * np.sin(2 * np.pi * (freq * along + phase))) - half


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinearly interpolated Gaussian noise with ``cells`` cells across, (size, size)."""
    g = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    t = (np.arange(size, dtype=np.float32) + 0.5) / size * cells
    i = np.minimum(t.astype(np.int64), cells - 1)
    f = t - i
    rows = g[i] * (1 - f)[:, None] + g[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def texture(
    cv: Canvas, rng: np.random.Generator, base: Color, amp: float = 0.06, grain: float = 0.025
) -> None:
    base = np.asarray(base, dtype=np.float32) * rng.uniform(0.93, 1.07)
    n = amp * smooth_noise(rng, cv.S, 5) + 0.6 * amp * smooth_noise(rng, cv.S, 13)
    cv.img[:] = (
        base + n[..., None] + grain * rng.standard_normal((cv.S, cv.S, 1)).astype(np.float32)
    )


GRASS = (0.34, 0.55, 0.22)
WATER = (0.12, 0.3, 0.55)
SAND = (0.88, 0.8, 0.58)
ASPHALT = (0.3, 0.3, 0.32)
CONCRETE = (0.62, 0.62, 0.6)


def trees(
    cv: Canvas,
    rng: np.random.Generator,
    n: int,
    avoid: tuple | None = None,
    land: np.ndarray | None = None,
    color: Color = (0.1, 0.32, 0.1),
) -> None:
    """``n`` tree crowns at random places (outside the box ``avoid``; on ``land`` pixels only)."""
    for _ in range(n):
        x, y = rng.uniform(0.03, 0.97, 2)
        if (
            avoid
            and avoid[0] - 0.05 < x < avoid[2] + 0.05
            and avoid[1] - 0.05 < y < avoid[3] + 0.05
        ):
            continue
        if (
            land is not None
            and not land[min(int(y * cv.S), cv.S - 1), min(int(x * cv.S), cv.S - 1)]
        ):
            continue
        r = rng.uniform(0.018, 0.03)
        cv.paint(cv.ellipse(x + 0.008, y + 0.008, r, r), (0.1, 0.18, 0.08), 0.5)
        cv.paint(cv.ellipse(x, y, r, r), np.asarray(color) * rng.uniform(0.8, 1.2))


def road(cv: Canvas, rng: np.random.Generator, axis: str, dirt: bool = False) -> None:
    c = 0.5 + rng.uniform(-0.03, 0.03)
    if dirt:
        cv.paint(cv.band(axis, c, 0.025, 0.01, 1.5, rng.uniform()), (0.58, 0.47, 0.32))
        return
    cv.paint(cv.band(axis, c, 0.045), (0.22, 0.22, 0.23))
    along = cv.X if axis == "h" else cv.Y
    dash = np.sin(along * 2 * np.pi * 8) > 0.2
    cv.paint(np.where(dash, cv.band(axis, c, 0.004), 1.0), (0.9, 0.88, 0.7))


# ----------------------------------------------------------------------------------------------
# Objects
# ----------------------------------------------------------------------------------------------
def _shadow(cv, sd):
    cv.paint(sd, (0.05, 0.05, 0.05), 0.45)


def draw_object(
    cv: Canvas,
    rng: np.random.Generator,
    shape: str,
    x: float,
    y: float,
    color: Color,
    along: float = 0.0,
) -> None:
    col = np.asarray(color, dtype=np.float32) * rng.uniform(0.9, 1.05)
    theta = float(rng.integers(2)) * np.pi / 2 + rng.uniform(-0.1, 0.1)
    if shape in ("house", "factory"):
        hw, hh = (0.05, 0.038) if shape == "house" else (0.068, 0.05)
        hw, hh = hw * rng.uniform(0.9, 1.1), hh * rng.uniform(0.9, 1.1)
        _shadow(cv, cv.box(x + 0.012, y + 0.012, hw, hh, theta))
        cv.paint(cv.box(x, y, hw, hh, theta), col)
        if shape == "house":
            cv.paint(cv.box(x, y, hw, 0.006, theta), col * 0.72)
        else:
            for k in (-0.5, 0.5):
                ox, oy = -np.sin(theta) * hh * k, np.cos(theta) * hh * k
                cv.paint(cv.box(x + ox, y + oy, hw, 0.004, theta), col * 0.75)
    elif shape == "plane":
        theta = rng.uniform(0, 2 * np.pi)
        u, v = cv.local(x, y, theta)
        body = np.maximum(np.abs(u) - 0.065, np.abs(v) - 0.013)
        wing = np.maximum(np.abs(u + 0.005) - 0.016, np.abs(v) - 0.062)
        tail = np.maximum(np.abs(u + 0.055) - 0.01, np.abs(v) - 0.03)
        sd = np.minimum(np.minimum(body, wing), tail)
        _shadow(cv, np.roll(sd, (1, 1), (0, 1)))
        cv.paint(sd, col)
    elif shape == "car":
        _shadow(cv, cv.box(x + 0.008, y + 0.008, 0.04, 0.024, theta))
        cv.paint(cv.box(x, y, 0.04, 0.024, theta), col)
        cv.paint(
            cv.box(x + 0.008 * np.cos(theta), y + 0.008 * np.sin(theta), 0.01, 0.02, theta),
            col * 0.55,
        )
    elif shape in ("boat", "ship"):
        a, b = (0.034, 0.013) if shape == "boat" else (0.065, 0.022)
        theta = along + rng.uniform(-0.15, 0.15)
        cv.paint(cv.ellipse(x, y, a * 1.25, b * 1.6, theta), (0.75, 0.82, 0.9), 0.35)
        cv.paint(cv.ellipse(x, y, a, b, theta), col)
        if shape == "ship":
            c, s = np.cos(theta), np.sin(theta)
            cv.paint(cv.box(x - 0.035 * c, y - 0.035 * s, 0.012, 0.012, theta), (0.9, 0.9, 0.9))
    elif shape == "umbrella":
        r = 0.038
        _shadow(cv, cv.ellipse(x + 0.01, y + 0.01, r, r))
        cv.paint(cv.ellipse(x, y, r, r), col)
        cv.paint(cv.ellipse(x, y, 0.006, 0.006), col * 0.5)
    elif shape == "tank":
        r = 0.042
        _shadow(cv, cv.ellipse(x + 0.012, y + 0.012, r, r))
        cv.paint(cv.ellipse(x, y, r, r), col)
        cv.paint(np.abs(cv.ellipse(x, y, r * 0.65, r * 0.65)) - 0.003, col * 0.7)
    elif shape == "tent":
        u, v = cv.local(x, y, theta + np.pi / 4)
        sd = (np.abs(u) + np.abs(v) - 0.06) / np.sqrt(2)
        _shadow(cv, np.roll(sd, (1, 1), (0, 1)))
        cv.paint(sd, col)
        cv.paint(cv.box(x, y, 0.04, 0.004, theta), col * 0.6)
    elif shape == "court":
        hw, hh = 0.066, 0.04
        cv.paint(cv.box(x, y, hw, hh), col)
        cv.paint(np.abs(cv.box(x, y, hw - 0.01, hh - 0.01)) - 0.002, (0.97, 0.97, 0.97))
        cv.paint(cv.box(x, y, 0.002, hh - 0.01), (0.97, 0.97, 0.97))
    else:
        raise ValueError(shape)


_PATTERNS = {
    1: [[(0.5, 0.5)]],
    2: [
        [(0.25, 0.5), (0.75, 0.5)],
        [(0.5, 0.25), (0.5, 0.75)],
        [(0.27, 0.27), (0.73, 0.73)],
        [(0.73, 0.27), (0.27, 0.73)],
    ],
    3: [
        [(0.14, 0.5), (0.5, 0.5), (0.86, 0.5)],
        [(0.5, 0.14), (0.5, 0.5), (0.5, 0.86)],
        [(0.25, 0.27), (0.75, 0.27), (0.5, 0.75)],
        [(0.5, 0.25), (0.25, 0.75), (0.75, 0.75)],
    ],
    4: [[(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]],
    5: [[(0.2, 0.2), (0.8, 0.2), (0.5, 0.5), (0.2, 0.8), (0.8, 0.8)]],
}


def object_positions(
    rng: np.random.Generator, region: str, count: int
) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = REGIONS[region]
    w, h = x1 - x0, y1 - y0
    if max(w, h) > 1.5 * min(w, h):  # elongated region: a row along its long side
        pts = [
            ((i + 0.5) / count, 0.5) if w > h else (0.5, (i + 0.5) / count) for i in range(count)
        ]
    else:
        options = _PATTERNS[count]
        pts = options[int(rng.integers(len(options)))]
    jit = rng.uniform(-0.03, 0.03, size=(count, 2))
    return [(x0 + (px + jx) * w, y0 + (py + jy) * h) for (px, py), (jx, jy) in zip(pts, jit)]

"""Rendering of synthetic-aerial scenes: one background and layout per scene type, then the objects.

Everything random comes from the generator given to :func:`render`, so a scene renders
bit-identically for the same seed.
"""

from __future__ import annotations

import numpy as np

from vladv_plugins.aerial.canvas import (
    ASPHALT,
    CONCRETE,
    GRASS,
    SAND,
    WATER,
    Canvas,
    draw_object,
    object_positions,
    road,
    smooth_noise,
    texture,
    trees,
)
from vladv_plugins.aerial.world import COLORS, SCENE_BY_KEY, Scene


# ----------------------------------------------------------------------------------------------
# Backgrounds and layouts, one per scene type
# ----------------------------------------------------------------------------------------------
def _farmland(cv, rng, arg):
    xc = np.sort(rng.uniform(0.15, 0.85, int(rng.integers(1, 4))))
    yc = np.sort(rng.uniform(0.15, 0.85, int(rng.integers(1, 4))))
    cell = np.searchsorted(xc, cv.X) * (len(yc) + 1) + np.searchsorted(yc, cv.Y)
    palette = np.array(
        [
            (0.45, 0.62, 0.2),
            (0.72, 0.7, 0.32),
            (0.56, 0.44, 0.26),
            (0.33, 0.52, 0.18),
            (0.8, 0.74, 0.45),
        ],
        dtype=np.float32,
    )
    n = (len(xc) + 1) * (len(yc) + 1)
    cols = palette[rng.integers(len(palette), size=n)]
    orient = rng.integers(2, size=n)
    freq = rng.uniform(10, 16, size=n)
    coord = np.where(orient[cell] == 0, cv.X, cv.Y)
    stripes = 0.05 * np.sin(2 * np.pi * freq[cell] * coord)
    cv.img[:] = cols[cell] + stripes[..., None]
    cv.img += 0.02 * rng.standard_normal((cv.S, cv.S, 1)).astype(np.float32)
    if arg:
        road(cv, rng, arg, dirt=bool(rng.integers(2)))


def _forest(cv, rng, arg):
    texture(cv, rng, (0.12, 0.3, 0.12), 0.05, 0.02)
    crowns = smooth_noise(rng, cv.S, 20)
    cv.img += 0.05 * crowns[..., None]
    if arg:
        road(cv, rng, arg, dirt=True)


def _river(cv, rng, arg):
    texture(cv, rng, GRASS)
    half = rng.uniform(0.06, 0.08)
    sd = cv.band(
        arg,
        0.0 if arg == "d" else 0.5 + rng.uniform(-0.03, 0.03),
        half,
        rng.uniform(0.01, 0.03),
        rng.uniform(1, 2),
        rng.uniform(),
    )
    cv.paint(sd - 0.012, (0.55, 0.5, 0.35))
    cv.paint(sd, WATER)


_CORNER_XY = {
    "tl": (0.27, 0.27),
    "tr": (0.73, 0.27),
    "bl": (0.27, 0.73),
    "br": (0.73, 0.73),
    "c": (0.5, 0.5),
}


def _lake(cv, rng, arg):
    texture(cv, rng, GRASS)
    x, y = _CORNER_XY[arg]
    x, y = x + rng.uniform(-0.03, 0.03), y + rng.uniform(-0.03, 0.03)
    a, b = rng.uniform(0.15, 0.2, 2)
    sd = cv.ellipse(x, y, a, b, rng.uniform(0, np.pi))
    sd = sd + 0.012 * smooth_noise(rng, cv.S, 6)
    cv.paint(sd - 0.012, (0.6, 0.55, 0.38))
    cv.paint(sd, WATER)


def _side_sd(cv, side, depth, wobble, phase):
    coord = {"left": cv.X, "right": 1 - cv.X, "top": cv.Y, "bottom": 1 - cv.Y}[side]
    along = cv.Y if side in ("left", "right") else cv.X
    return coord - depth - wobble * np.sin(2 * np.pi * (2 * along + phase))


def _beach(cv, rng, arg):
    texture(cv, rng, SAND, 0.04, 0.02)
    sd = _side_sd(cv, arg, rng.uniform(0.34, 0.42), rng.uniform(0.005, 0.02), rng.uniform())
    cv.paint(sd - 0.03, (0.72, 0.66, 0.5))
    cv.paint(sd - 0.008, (0.9, 0.93, 0.95))
    cv.paint(sd, (0.1, 0.42, 0.62))


def _desert(cv, rng, arg):
    texture(cv, rng, (0.88, 0.66, 0.4), 0.04, 0.02)
    theta = rng.uniform(0, np.pi)
    u = cv.X * np.cos(theta) + cv.Y * np.sin(theta)
    cv.img += (
        0.06 * np.sin(2 * np.pi * (rng.uniform(4, 7) * u + 0.3 * smooth_noise(rng, cv.S, 3)))
    )[..., None]
    if arg:
        road(cv, rng, arg)


def _dense(cv, rng, arg, colors, size, n_trees):
    texture(cv, rng, (0.45, 0.45, 0.45), 0.03, 0.02)
    step = rng.uniform(0.095, 0.11) if size == "small" else rng.uniform(0.14, 0.16)
    off = rng.uniform(0, step, 2)
    gx = np.floor((cv.X - off[0]) / step)
    gy = np.floor((cv.Y - off[1]) / step)
    fx = (cv.X - off[0]) / step - gx
    fy = (cv.Y - off[1]) / step - gy
    house = (np.abs(fx - 0.5) < 0.33) & (np.abs(fy - 0.5) < 0.3)
    ids = ((gx + 50) * 101 + gy + 50).astype(np.int64) % 997
    shade = rng.uniform(0.8, 1.1, 997).astype(np.float32)[ids]
    palette = np.array([COLORS[c] for c in colors], dtype=np.float32)
    roof = palette[rng.integers(len(palette), size=997)[ids]] * shade[..., None]
    ridge = np.abs(fy - 0.5) < 0.05
    roof = np.where(ridge[..., None], roof * 0.75, roof)
    cv.img[:] = np.where(house[..., None], roof, cv.img)
    x, y = _CORNER_XY[arg]
    park = cv.box(x, y, 0.17, 0.17)
    cv.paint(park, GRASS)
    for _ in range(n_trees):
        tx, ty = x + rng.uniform(-0.14, 0.14), y + rng.uniform(-0.14, 0.14)
        cv.paint(cv.ellipse(tx, ty, 0.025, 0.025), (0.1, 0.32, 0.1))


def _grass_road(cv, rng, arg, base=GRASS):
    texture(cv, rng, base)
    if arg:
        road(cv, rng, arg)


def _parking(cv, rng, arg):
    texture(cv, rng, ASPHALT, 0.02, 0.015)
    rows = np.abs(((cv.Y * 5 + 0.5) % 1.0) - 0.5) < 0.3
    lines = np.abs(((cv.X * 8) % 1.0) - 0.5) > 0.4
    cv.img[:] = np.where((rows & lines)[..., None], np.float32(0.62), cv.img)
    if arg:
        road(cv, rng, arg)


def _airport(cv, rng, arg):
    texture(cv, rng, GRASS, 0.04)
    c = 0.5 + rng.uniform(-0.03, 0.03)
    cv.paint(cv.band(arg, c, 0.085), (0.5, 0.5, 0.5))
    cv.paint(cv.band(arg, c, 0.06), (0.25, 0.25, 0.27))
    along = cv.X if arg == "h" else cv.Y
    cv.paint(
        np.where(np.sin(along * 2 * np.pi * 6) > 0, cv.band(arg, c, 0.006), 1.0), (0.95, 0.95, 0.95)
    )


def _bridge(cv, rng, arg):
    texture(cv, rng, GRASS)
    river = cv.band(arg, 0.5, 0.15, 0.01, 1.0, rng.uniform())
    cv.paint(river - 0.01, (0.55, 0.5, 0.35))
    cv.paint(river, WATER)
    other = "v" if arg == "h" else "h"
    c = 0.5 + rng.uniform(-0.02, 0.02)
    cv.paint(cv.band(other, c, 0.045), (0.35, 0.33, 0.3))
    cv.paint(cv.band(other, c, 0.035), (0.6, 0.6, 0.58))


def _playground(cv, rng, arg):
    texture(cv, rng, GRASS, 0.04)
    cx, cy, hw, hh = {
        "left": (0.25, 0.5, 0.17, 0.38),
        "right": (0.75, 0.5, 0.17, 0.38),
        "top": (0.5, 0.25, 0.38, 0.17),
        "bottom": (0.5, 0.75, 0.38, 0.17),
    }[arg]
    r = min(hw, hh)
    u, v = cv.local(cx, cy)
    sd = (
        np.sqrt(np.maximum(np.abs(u) - (hw - r), 0) ** 2 + np.maximum(np.abs(v) - (hh - r), 0) ** 2)
        - r
    )
    cv.paint(sd, (0.75, 0.25, 0.2))
    cv.paint(sd + 0.04, (0.2, 0.6, 0.25))
    cv.paint(np.abs(sd + 0.02) - 0.003, (0.95, 0.9, 0.9), 0.6)


def _port(cv, rng, arg):
    texture(cv, rng, (0.1, 0.25, 0.45), 0.03, 0.015)
    land = _side_sd(cv, arg, rng.uniform(0.22, 0.28), 0.0, 0.0)
    cv.paint(land, CONCRETE)
    along = cv.Y if arg in ("left", "right") else cv.X
    coord = {"left": cv.X, "right": 1 - cv.X, "top": cv.Y, "bottom": 1 - cv.Y}[arg]
    for p in np.linspace(0.15, 0.85, int(rng.integers(2, 4))):
        cv.paint(np.maximum(np.abs(along - p) - 0.025, coord - 0.42), CONCRETE)
    for _ in range(int(rng.integers(3, 8))):  # containers on the quay
        a, d = rng.uniform(0.05, 0.95), rng.uniform(0.03, 0.18)
        x, y = {"left": (d, a), "right": (1 - d, a), "top": (a, d), "bottom": (a, 1 - d)}[arg]
        cv.paint(
            cv.box(x, y, 0.03, 0.015, 0 if arg in ("top", "bottom") else np.pi / 2),
            np.array((0.55, 0.45, 0.35)) * rng.uniform(0.8, 1.2),
        )


def _railway(cv, rng, arg, color, count, region):
    texture(cv, rng, (0.55, 0.5, 0.44), 0.03, 0.02)
    pos = np.linspace(0.16, 0.84, 5) + rng.uniform(-0.02, 0.02)
    along = cv.X if arg == "h" else cv.Y
    for p in pos:
        cv.paint(cv.band(arg, p, 0.03), (0.42, 0.38, 0.34))
        ties = np.abs(((along * 40) % 1.0) - 0.5) < 0.2
        cv.paint(np.where(ties, cv.band(arg, p, 0.022), 1.0), (0.35, 0.28, 0.22))
        cv.paint(np.abs(cv.band(arg, p, 0.0) - 0.014) - 0.003, (0.15, 0.15, 0.15))
    for p in rng.choice(pos, size=count, replace=False):
        length = rng.uniform(0.36, 0.44)  # parked in the named half of the tracks
        start = rng.uniform(0.02, 0.08) if region in ("left", "top") else rng.uniform(0.5, 0.6)
        seg = np.abs(((along - start) / 0.12) % 1.0 - 0.5) < 0.45
        inside = (along > start) & (along < start + length) & seg
        base = np.asarray(COLORS[color], dtype=np.float32) * rng.uniform(0.9, 1.05)
        cv.paint(np.where(inside, cv.band(arg, p, 0.024), 1.0), base)


OBJECT_SCALE = {"small": 0.72, "large": 1.18, None: 1.0}
TREE_COUNTS = {"none": (0, 0), "few": (3, 5), "many": (12, 18)}
_GROUND_TONE = {
    "dry": np.array((0.66, 0.57, 0.34), np.float32),
    "snowy": np.array((0.93, 0.94, 0.96), np.float32),
}
_TREE_TONE = {
    "green": (0.1, 0.32, 0.1),
    "dry": (0.33, 0.3, 0.12),
    "snowy": (0.08, 0.24, 0.12),
    None: (0.1, 0.32, 0.1),
}


def _tree_count(rng: np.random.Generator, amount: str | None) -> int:
    lo, hi = TREE_COUNTS.get(amount or "none", (0, 0))
    return int(rng.integers(lo, hi + 1)) if hi else 0


def water_mask(img: np.ndarray) -> np.ndarray:
    """Pixels that are water (clearly bluer than red)."""
    return img[..., 2] - img[..., 0] > 0.2


def apply_ground(
    cv: Canvas, ground: str | None, water: np.ndarray, canopy: bool = False, painted: bool = False
) -> None:
    """Turn the vegetation dry, or cover everything but water with snow (texture kept); under a
    ``canopy`` (a forest) snow only shows between the crowns; ``painted`` backgrounds (roofs,
    trains) keep their colours under the snow."""
    if ground not in _GROUND_TONE:
        return
    img = cv.img
    green = np.clip((img[..., 1] - np.maximum(img[..., 0], img[..., 2])) * 8.0, 0.0, 1.0)
    if ground == "dry":
        weight = 0.9 * green
    else:  # snow on vegetation and on grey surfaces; painted roofs and water stay visible
        grey = np.clip(1.0 - 6.0 * (img.max(axis=-1) - img.min(axis=-1)), 0.0, 1.0)
        cover = np.maximum(green, 0.75 * grey) if painted else np.full_like(green, 0.85)
        weight = np.where(water, 0.0, cover)
        if canopy:
            weight = weight * np.clip(
                1.6 * img.mean(axis=-1) / max(float(img.mean()), 1e-3) - 0.9, 0.15, 0.7
            )
    lum = img.mean(axis=-1, keepdims=True)
    shaded = _GROUND_TONE[ground] * (0.8 + 0.4 * lum / max(float(lum.mean()), 1e-3))
    cv.img = img + weight[..., None] * (shaded - img)


def render(s: Scene, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Draw scene ``s``: an (size, size, 3) uint8 array."""
    st = SCENE_BY_KEY[s.scene]
    cv = Canvas(size)
    kind, _, arg = s.layout.partition("-")
    arg = arg if kind != "none" else ""
    if s.scene == "farmland":
        _farmland(cv, rng, arg)
    elif s.scene == "forest":
        _forest(cv, rng, arg)
    elif s.scene == "river":
        _river(cv, rng, arg)
    elif s.scene == "lake":
        _lake(cv, rng, arg)
    elif s.scene == "beach":
        _beach(cv, rng, arg)
    elif s.scene == "desert":
        _desert(cv, rng, arg)
    elif s.scene == "dense-residential":
        _dense(cv, rng, arg, s.colors, s.size, _tree_count(rng, s.trees) // 2)
    elif s.scene == "sparse-residential":
        _grass_road(cv, rng, arg, GRASS)
    elif s.scene == "industrial":
        _grass_road(cv, rng, arg, CONCRETE)
    elif s.scene == "storage-tanks":
        _grass_road(cv, rng, arg, (0.7, 0.66, 0.55))
    elif s.scene == "parking":
        _parking(cv, rng, arg)
    elif s.scene == "airport":
        _airport(cv, rng, arg)
    elif s.scene == "bridge":
        _bridge(cv, rng, arg)
    elif s.scene == "playground":
        _playground(cv, rng, arg)
    elif s.scene == "port":
        _port(cv, rng, arg)
    elif s.scene == "railway-station":
        _railway(cv, rng, arg, s.color, s.count, s.region)
    water = water_mask(cv.img)
    apply_ground(
        cv,
        s.ground,
        water,
        canopy=s.scene == "forest",
        painted=s.scene in ("dense-residential", "railway-station"),
    )
    if s.trees is not None and s.scene != "dense-residential":
        trees(cv, rng, _tree_count(rng, s.trees), land=~water, color=_TREE_TONE[s.ground])
    if s.region is not None and s.scene != "railway-station":
        along = 0.0 if (s.scene != "bridge" or arg == "h") else np.pi / 2
        if s.scene == "port":
            along = float(rng.uniform(0, np.pi))
        scale = OBJECT_SCALE[s.size]
        for x, y in object_positions(rng, s.region, s.count):
            with cv.zoom(x, y, scale):
                draw_object(cv, rng, st.shape, x, y, COLORS[s.color], along)
    cv.img *= rng.uniform(0.94, 1.06)
    return (np.clip(cv.img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

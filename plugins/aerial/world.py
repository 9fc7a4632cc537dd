"""The synthetic-aerial world (v2): scene types, their attributes, and the phrases that state them.

Every image is described by an attribute record (:class:`Scene`): the scene type, a layout (the
scene's big feature: a road, a river, a lake, the sea, a runway ...), a group of ``count`` objects
of one ``color`` and ``size`` placed in a ``region``, the amount of ``trees`` and the ``ground``
(green, dry or snowy). The renderer (:mod:`vladv_plugins.aerial.render`) draws exactly these
attributes; the captions (:mod:`vladv_plugins.aerial.captions`) state several of them at once, each
caption its own subset, with the redundancy of human captions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.14, 0.12),
    "blue": (0.14, 0.32, 0.88),
    "white": (0.97, 0.97, 0.95),
    "yellow": (0.98, 0.86, 0.16),
    "orange": (0.98, 0.52, 0.08),
    "purple": (0.58, 0.2, 0.76),
    "black": (0.07, 0.07, 0.08),
    "gray": (0.58, 0.58, 0.62),
    "green": (0.16, 0.68, 0.2),
}

# region name -> box (x0, y0, x1, y1) in unit coordinates, y pointing down
REGIONS: dict[str, tuple[float, float, float, float]] = {
    "top left": (0.04, 0.04, 0.44, 0.44),
    "top right": (0.56, 0.04, 0.96, 0.44),
    "bottom left": (0.04, 0.56, 0.44, 0.96),
    "bottom right": (0.56, 0.56, 0.96, 0.96),
    "center": (0.3, 0.3, 0.7, 0.7),
    "left": (0.03, 0.36, 0.4, 0.64),
    "right": (0.6, 0.36, 0.97, 0.64),
    "top": (0.36, 0.03, 0.64, 0.4),
    "bottom": (0.36, 0.6, 0.64, 0.97),
}
CORNERS = ("top left", "top right", "bottom left", "bottom right")
SIDES = ("left", "right", "top", "bottom")


@dataclass(frozen=True)
class SceneType:
    """A scene type: its names, its layouts, and the objects that populate it."""

    key: str
    names: tuple[str, ...]  # noun phrases with article ("a farmland", ...)
    layouts: tuple[str, ...]  # layout keys, see LAYOUT_PHRASES
    noun: tuple[str, str]  # (singular, plural)
    shape: str  # renderer shape of the objects
    colors: tuple[str, ...]
    counts: tuple[int, int]  # inclusive range; (0, 0) = "many" (no count)
    has_region: bool = True
    has_size: bool = True  # objects come small or large
    has_trees: bool = True  # the amount of trees is an attribute (not: forest)
    has_ground: bool = True  # green / dry / snowy ground (not: sand scenes)


SCENES: tuple[SceneType, ...] = (
    SceneType(
        "farmland",
        ("a farmland", "some farmland", "an agricultural area", "cultivated fields", "farm fields"),
        ("none", "road-h", "road-v"),
        ("farmhouse", "farmhouses"),
        "house",
        ("red", "blue", "white", "purple", "black"),
        (1, 4),
    ),
    SceneType(
        "forest",
        ("a forest", "a dense forest", "some woodland", "a wooded area"),
        ("none", "path-h", "path-v"),
        ("cabin", "cabins"),
        "house",
        ("red", "white", "blue", "orange", "yellow"),
        (1, 4),
        has_trees=False,
    ),
    SceneType(
        "river",
        ("a river area", "a river valley", "a river landscape", "a riverside area"),
        ("river-h", "river-v", "river-d"),
        ("house", "houses"),
        "house",
        ("red", "white", "blue", "orange", "black"),
        (1, 4),
    ),
    SceneType(
        "lake",
        ("a lake area", "a lakeside", "a green area with a lake", "a lakeside park"),
        ("lake-tl", "lake-tr", "lake-bl", "lake-br", "lake-c"),
        ("house", "houses"),
        "house",
        ("red", "white", "yellow", "orange", "purple"),
        (1, 4),
    ),
    SceneType(
        "beach",
        ("a beach", "a sandy beach", "a coastline", "a seaside beach"),
        ("sea-left", "sea-right", "sea-top", "sea-bottom"),
        ("umbrella", "umbrellas"),
        "umbrella",
        ("red", "blue", "green", "purple", "orange"),
        (1, 5),
        has_ground=False,
    ),
    SceneType(
        "desert",
        ("a desert", "a sandy desert", "a dry desert area", "some desert dunes"),
        ("none", "road-h", "road-v"),
        ("tent", "tents"),
        "tent",
        ("white", "blue", "red", "black", "green"),
        (1, 4),
        has_ground=False,
    ),
    SceneType(
        "dense-residential",
        (
            "a dense residential area",
            "a crowded neighborhood",
            "a densely built district",
            "a dense town",
        ),
        ("park-tl", "park-tr", "park-bl", "park-br", "park-c"),
        ("house", "houses"),
        "grid",
        ("red", "blue", "gray", "orange", "white"),
        (0, 0),
        has_region=False,
    ),
    SceneType(
        "sparse-residential",
        ("a sparse residential area", "a quiet suburb", "a sparse neighborhood", "a suburban area"),
        ("none", "road-h", "road-v"),
        ("house", "houses"),
        "house",
        ("red", "blue", "white", "gray", "orange"),
        (1, 4),
    ),
    SceneType(
        "industrial",
        ("an industrial area", "an industrial zone", "a factory district", "an industrial park"),
        ("none", "road-h", "road-v"),
        ("factory", "factories"),
        "factory",
        ("blue", "white", "red", "green", "orange"),
        (1, 3),
    ),
    SceneType(
        "storage-tanks",
        ("a storage tank area", "an oil depot", "a tank farm", "a fuel storage site"),
        ("none", "road-h", "road-v"),
        ("storage tank", "storage tanks"),
        "tank",
        ("white", "green", "blue", "red", "black"),
        (1, 5),
    ),
    SceneType(
        "parking",
        ("a parking lot", "a car park", "a large parking area", "an outdoor parking lot"),
        ("none", "road-h", "road-v"),
        ("car", "cars"),
        "car",
        ("red", "white", "blue", "yellow", "orange"),
        (1, 5),
    ),
    SceneType(
        "airport",
        ("an airport", "an airfield", "an airport apron", "a small airport"),
        ("runway-h", "runway-v"),
        ("plane", "planes"),
        "plane",
        ("white", "red", "blue", "yellow", "orange"),
        (1, 4),
    ),
    SceneType(
        "bridge",
        ("a bridge", "a bridge over a river", "a river crossing", "a bridge area"),
        ("bridge-h", "bridge-v"),
        ("boat", "boats"),
        "boat",
        ("white", "red", "yellow", "orange", "black"),
        (1, 4),
    ),
    SceneType(
        "playground",
        ("a playground", "a sports ground", "a school playground", "a sports field"),
        ("track-left", "track-right", "track-top", "track-bottom"),
        ("tennis court", "tennis courts"),
        "court",
        ("blue", "red", "orange", "purple", "white"),
        (1, 3),
    ),
    SceneType(
        "port",
        ("a port", "a harbor", "a seaport", "a busy harbor"),
        ("dock-left", "dock-right", "dock-top", "dock-bottom"),
        ("ship", "ships"),
        "ship",
        ("red", "white", "orange", "yellow", "black"),
        (1, 4),
    ),
    SceneType(
        "railway-station",
        ("a railway station", "a train station", "a rail yard", "a railway hub"),
        ("rail-h", "rail-v"),
        ("train", "trains"),
        "train",
        ("red", "blue", "white", "yellow", "green"),
        (1, 3),
        has_size=False,
    ),
)
SCENE_BY_KEY = {s.key: s for s in SCENES}


@dataclass(frozen=True)
class Scene:
    """The caption-visible attributes of one image."""

    scene: str
    layout: str
    color: str
    count: int  # 0 = "many"
    region: str | None  # None for scenes whose objects follow the layout
    color2: str | None = None  # a second roof color (mixed roofs of dense residential areas)
    size: str | None = None  # "small" / "large" objects; None where the scene has no size
    trees: str | None = None  # "none" / "few" / "many"; None where trees are not an attribute
    ground: str | None = None  # "green" / "dry" / "snowy"; None for sand scenes

    @property
    def color_phrase(self) -> str:
        """'red', or 'red and white' for mixed roofs."""
        return f"{self.color} and {self.color2}" if self.color2 else self.color

    @property
    def colors(self) -> tuple[str, ...]:
        return (self.color, self.color2) if self.color2 else (self.color,)


def allowed_regions(scene: SceneType, layout: str) -> tuple[str, ...]:
    """Regions where the objects may stand without fighting the scene's big feature."""
    kind, _, arg = layout.partition("-")
    if kind == "none":
        return (*CORNERS, "center")
    if kind in ("road", "path", "river", "runway"):
        return ("top right", "bottom left") if arg == "d" else CORNERS
    if kind == "lake":
        lake = {"tl": "top left", "tr": "top right", "bl": "bottom left", "br": "bottom right"}
        return tuple(c for c in CORNERS if c != lake.get(arg))
    if kind == "sea":  # umbrellas on the sand, away from the sea
        return {
            "left": ("top right", "bottom right"),
            "right": ("top left", "bottom left"),
            "top": ("bottom left", "bottom right"),
            "bottom": ("top left", "top right"),
        }[arg]
    if kind == "dock":  # ships on the water, away from the docks
        return {
            "left": ("top right", "bottom right"),
            "right": ("top left", "bottom left"),
            "top": ("bottom left", "bottom right"),
            "bottom": ("top left", "top right"),
        }[arg]
    if kind == "track":
        return {
            "left": ("top right", "bottom right"),
            "right": ("top left", "bottom left"),
            "top": ("bottom left", "bottom right"),
            "bottom": ("top left", "top right"),
        }[arg]
    if kind in ("bridge", "rail"):
        return ("left", "right") if arg == "h" else ("top", "bottom")
    return (*CORNERS, "center")


SIZES = ("small", "large")
TREE_AMOUNTS = ("none", "few", "many")
GROUNDS = ("green", "dry", "snowy")
ATTRIBUTES = ("scene", "layout", "color", "color2", "count", "region", "size", "trees", "ground")
"""The caption-visible attributes, in the order of :meth:`Scene` fields."""


def attribute_distance(a: Scene, b: Scene) -> int:
    """How many caption-visible attributes differ between two records (Hamming distance)."""
    return sum(getattr(a, f) != getattr(b, f) for f in ATTRIBUTES)


def attribute_codes(
    *groups: list[Scene], table: dict[tuple[str, object], int] | None = None
) -> list[np.ndarray]:
    """Each group of records as an int64 array (N, len(ATTRIBUTES)), one code per attribute value;
    codes are shared across the groups, so equal codes mean equal values (Hamming distances
    between groups are ``(a[:, None] != b[None]).sum(-1)``). Pass ``table`` (value → code, filled
    in place) to keep the codes of records coded one call at a time comparable."""
    table = {} if table is None else table
    return [
        np.array(
            [[table.setdefault((f, getattr(s, f)), len(table)) for f in ATTRIBUTES] for s in group],
            dtype=np.int64,
        ).reshape(len(group), len(ATTRIBUTES))
        for group in groups
    ]


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw one attribute record (uniform scene type, then uniform attributes)."""
    st = SCENES[int(rng.integers(len(SCENES)))]
    layout = st.layouts[int(rng.integers(len(st.layouts)))]
    color = st.colors[int(rng.integers(len(st.colors)))]
    color2 = None
    if st.shape == "grid" and rng.random() < 0.6:  # mixed roofs: "red and white"
        a, b = sorted(int(i) for i in rng.choice(len(st.colors), size=2, replace=False))
        color, color2 = st.colors[a], st.colors[b]
    lo, hi = st.counts
    count = int(rng.integers(lo, hi + 1)) if hi else 0
    region = None
    if st.has_region:
        regions = allowed_regions(st, layout)
        region = regions[int(rng.integers(len(regions)))]
    size = SIZES[int(rng.integers(2))] if st.has_size else None
    trees = TREE_AMOUNTS[int(rng.integers(3))] if st.has_trees else None
    ground = GROUNDS[int(rng.integers(3))] if st.has_ground else None
    return Scene(st.key, layout, color, count, region, color2, size, trees, ground)


def mutate_scene(s: Scene, rng: np.random.Generator) -> Scene:
    """The scene a generator drew instead of ``s``: one object missing or hallucinated, or the
    objects' color wrong (the image–caption mismatches of machine-made training data)."""
    st = SCENE_BY_KEY[s.scene]
    lo, hi = st.counts
    kinds = ["color"] + (["count"] if hi else [])
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "count":
        options = [c for c in (s.count - 1, s.count + 1) if lo <= c <= hi]
        return dataclasses.replace(s, count=options[int(rng.integers(len(options)))])
    others = [c for c in st.colors if c not in s.colors]
    return dataclasses.replace(s, color=others[int(rng.integers(len(others)))])


# ----------------------------------------------------------------------------------------------
# Phrase banks
# ----------------------------------------------------------------------------------------------
OPENERS = (
    "an aerial image of",
    "an aerial photo of",
    "an aerial view of",
    "a satellite image of",
    "a top-down view of",
    "a remote sensing image of",
    "an overhead picture of",
    "a bird's-eye view of",
)
VIEWS = ("aerial image", "image", "photo", "picture", "satellite image", "aerial view", "scene")
THERE_PL = ("there are", "we can see", "you can see", "one can see", "it shows")
THERE_SG = ("there is", "we can see", "you can see", "one can see", "it shows")
COUNT_WORDS = {
    1: ("one", "a single", "a"),
    2: ("two", "a pair of"),
    3: ("three",),
    4: ("four",),
    5: ("five",),
}
MANY = ("many", "lots of", "dozens of", "rows of", "numerous")

POSITIONS = {
    "top left": (
        "in the top left",
        "in the top left corner",
        "at the upper left",
        "in the upper left part",
    ),
    "top right": (
        "in the top right",
        "in the top right corner",
        "at the upper right",
        "in the upper right part",
    ),
    "bottom left": (
        "in the bottom left",
        "in the bottom left corner",
        "at the lower left",
        "in the lower left part",
    ),
    "bottom right": (
        "in the bottom right",
        "in the bottom right corner",
        "at the lower right",
        "in the lower right part",
    ),
    "center": ("in the center", "in the middle", "at the center", "in the central part"),
    "left": ("on the left", "on the left side", "in the left part"),
    "right": ("on the right", "on the right side", "in the right part"),
    "top": ("at the top", "in the upper part", "near the top"),
    "bottom": ("at the bottom", "in the lower part", "near the bottom"),
}

_ROAD = {
    "h": (
        "a road running horizontally",
        "a horizontal road",
        "a road crossing from left to right",
        "a straight road from west to east",
    ),
    "v": (
        "a road running vertically",
        "a vertical road",
        "a road crossing from top to bottom",
        "a straight road from north to south",
    ),
}
_CORNER_WORD = {
    "tl": "top left",
    "tr": "top right",
    "bl": "bottom left",
    "br": "bottom right",
    "c": "center",
}


def _corner_phrases(noun: str, arg: str) -> tuple[str, ...]:
    where = _CORNER_WORD[arg]
    if arg == "c":
        return (f"{noun} in the center", f"{noun} in the middle", f"a central {noun.split()[-1]}")
    return (f"{noun} in the {where}", f"{noun} in the {where} corner", f"{noun} at the {where}")


def layout_phrases(layout: str) -> tuple[str, ...]:
    """Noun phrases for the layout, usable after 'with' or 'and'."""
    kind, _, arg = layout.partition("-")
    if kind == "none":
        return ()
    if kind == "road":
        return _ROAD[arg]
    if kind == "path":
        d = "horizontally" if arg == "h" else "vertically"
        return (
            f"a dirt path running {d}",
            f"a narrow path crossing {d}",
            f"a {'horizontal' if arg == 'h' else 'vertical'} forest path",
        )
    if kind == "river":
        if arg == "d":
            return ("a river flowing diagonally", "a diagonal river", "a river crossing diagonally")
        d, adj = (
            ("from left to right", "horizontal")
            if arg == "h"
            else ("from top to bottom", "vertical")
        )
        return (f"a river flowing {d}", f"a {adj} river", f"a winding river running {d}")
    if kind == "lake":
        return _corner_phrases("a lake", arg) + _corner_phrases("a blue lake", arg)[:1]
    if kind == "park":
        return _corner_phrases("a green park", arg) + _corner_phrases("a small park", arg)[:1]
    if kind == "sea":
        return (f"the sea on the {arg}", f"water on the {arg} side", f"the ocean on the {arg}")
    if kind == "dock":
        return (f"docks on the {arg}", f"piers on the {arg} side", f"the quay on the {arg}")
    if kind == "runway":
        adj = "horizontal" if arg == "h" else "vertical"
        d = "horizontally" if arg == "h" else "vertically"
        return (f"a {adj} runway", f"a runway running {d}", f"a long runway crossing {d}")
    if kind == "bridge":
        adj, other = ("horizontal", "vertical") if arg == "h" else ("vertical", "horizontal")
        return (
            f"a {adj} river crossed by a {other} bridge",
            f"a bridge over a {adj} river",
            f"a {other} bridge spanning the {adj} river",
        )
    if kind == "track":
        return (
            f"a running track on the {arg}",
            f"a red running track on the {arg} side",
            f"an oval track on the {arg}",
        )
    if kind == "rail":
        d = "horizontal" if arg == "h" else "vertical"
        return (f"{d} railway tracks", f"{d} rails", f"several {d} tracks")
    raise ValueError(layout)


def relation_phrases(s: Scene) -> tuple[str, ...]:
    """How the objects relate to the layout feature (true by construction)."""
    kind, _, arg = s.layout.partition("-")
    region = s.region or ""
    vert = "above" if region.startswith("top") else "below"
    horiz = "left of" if region.endswith("left") else "right of"
    if kind in ("road", "path", "river", "runway"):
        feat = {
            "road": "the road",
            "path": "the path",
            "river": "the river",
            "runway": "the runway",
        }[kind]
        near = "beside" if kind != "river" else "near"
        if arg == "h":
            return (f"{vert} {feat}", f"next to {feat}", f"{near} {feat}")
        if arg == "v":
            return (f"to the {horiz} {feat}", f"next to {feat}", f"{near} {feat}")
        side = "above" if region == "top right" else "below"
        return (f"{side} {feat}", f"near {feat}", f"on one bank of {feat}")
    if kind == "lake":
        lake = _CORNER_WORD[arg]
        if arg == "c":
            return ("around the lake", "near the lake", "next to the lake")
        lv, lh = lake.split()
        rv, rh = region.split()
        if lv == rv:
            return (f"to the {rh} of the lake", "near the lake", "beside the lake")
        if lh == rh:
            return (
                f"{'above' if rv == 'top' else 'below'} the lake",
                "near the lake",
                "by the lake",
            )
        return ("across from the lake", "near the lake", "diagonally opposite the lake")
    if kind == "sea":
        return ("on the sand", "on the beach", "along the shore")
    if kind == "dock":
        return ("in the water", "near the docks", "in the harbor")
    if kind == "track":
        return ("next to the running track", "beside the track", "near the track")
    if kind == "bridge":
        if arg == "h":
            return (f"to the {region} of the bridge", "near the bridge", "on the river")
        return (
            f"{'above' if region == 'top' else 'below'} the bridge",
            "near the bridge",
            "on the river",
        )
    if kind == "rail":
        return ("on the tracks", "on the railway", "at the station")
    if kind == "park":
        return ("around the park", "near the park", "surrounding the park")
    generic = {
        "farmland": ("among the fields", "between the fields"),
        "forest": ("surrounded by trees", "among the trees"),
        "desert": ("on the sand", "in the desert"),
        "industrial": ("on the concrete", "in the industrial zone"),
        "storage-tanks": ("on the site", "next to each other"),
        "parking": ("in the parking lot", "between the parking spaces"),
        "sparse-residential": ("surrounded by lawns", "among the trees"),
    }
    return generic.get(s.scene, ("in the scene",))

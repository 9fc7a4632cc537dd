"""Captions of synthetic-aerial scenes (world v2): each caption states its own subset of attributes.

Human-style captions (the ``real`` domain, standing in for RSICD annotators) always name the scene
and the objects; every other attribute — count, color, size, position, layout, trees, ground — is
stated with its own probability, in one of several sentence frames and with synonyms, so the five
captions of an image overlap and repeat each other as human captions do. A one-word edit removes
or falsifies one attribute of one caption, and the others still point at the image.

Machine-style captions (the ``generated`` domain, standing in for a captioning model's output on
generated images) use a few fixed frames and list almost every attribute in a fixed order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from vladv_plugins.aerial.world import (
    COLORS,
    COUNT_WORDS,
    MANY,
    OPENERS,
    POSITIONS,
    SCENE_BY_KEY,
    THERE_PL,
    THERE_SG,
    VIEWS,
    Scene,
    layout_phrases,
    relation_phrases,
)

_ROOFED = ("house", "factory", "grid")
_VIEW_A = (
    "an aerial photo",
    "a satellite image",
    "an aerial image",
    "a top-down view",
    "an overhead image",
    "a remote sensing image",
)
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
TREE_PHRASES = {
    "none": ("without any trees", "with no trees", "with no trees around"),
    "few": ("with a few trees", "with some scattered trees", "with a few trees around"),
    "many": ("with many trees", "surrounded by lots of trees", "with plenty of trees"),
}
GROUND_ADJ = {
    "green": ("green", "lush"),
    "dry": ("dry", "brown"),
    "snowy": ("snowy", "snow-covered"),
}
GROUND_CLAUSES = {
    "green": ("with green grass", "in summer"),
    "dry": ("with dry grass", "in a dry season"),
    "snowy": ("covered with snow", "in winter"),
}


@dataclass(frozen=True)
class CaptionStyle:
    """How often a caption states each optional attribute (the scene and objects always).

    ``detailed``: the share of captions that state every attribute (a careful annotator's long
    caption); the others state each attribute with its own probability.
    """

    count: float = 0.9
    color: float = 0.95
    size: float = 0.75
    position: float = 0.8
    layout: float = 0.8
    trees: float = 0.7
    ground: float = 0.7
    detailed: float = 0.0


HUMAN = CaptionStyle(detailed=0.7)
DETAILED = CaptionStyle(
    count=1.0, color=1.0, size=1.0, position=1.0, layout=1.0, trees=1.0, ground=1.0
)
MACHINE = CaptionStyle(
    count=0.95, color=0.95, size=0.9, position=0.9, layout=0.9, trees=0.9, ground=0.9
)


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def with_adjective(noun_phrase: str, adjective: str) -> str:
    """'a farmland' + 'snowy' → 'a snowy farmland'; 'farm fields' → 'snowy farm fields'."""
    first, _, rest = noun_phrase.partition(" ")
    if first in ("a", "an"):
        return f"{_article(adjective)} {adjective} {rest}"
    if first == "some":
        return f"some {adjective} {rest}"
    return f"{adjective} {noun_phrase}"


def object_phrase(s: Scene, rng: np.random.Generator, style: CaptionStyle = HUMAN) -> str:
    """'three large red planes', 'a house with a blue roof', 'many red-roofed houses' ..."""
    st = SCENE_BY_KEY[s.scene]
    sg, pl = st.noun
    c = s.color_phrase if rng.random() < style.color else ""
    size = _pick(rng, SIZE_WORDS[s.size]) + " " if s.size and rng.random() < style.size else ""
    if s.count == 0:
        many = _pick(rng, MANY)
        if not c:
            return f"{many} {size}houses"
        return _pick(
            rng,
            (
                f"{many} {size}houses with {c} roofs",
                f"{many} {c} roofs",
                f"{many} {size}houses with {c} roofs",
            ),
        )
    if s.count == 1:
        cw = _pick(rng, COUNT_WORDS[1]) if rng.random() < style.count else "a"
        roof = st.shape in _ROOFED
        variants = [f"{cw} {size}{c} {sg}"]
        if c:
            variants.append(
                f"{cw} {size}{sg} with a {c} roof" if roof else f"{cw} {size}{sg} painted {c}"
            )
        phrase = re.sub(r"\s+", " ", _pick(rng, variants))
        if phrase.startswith("a "):
            phrase = _article(phrase[2:]) + phrase[1:]
        return phrase
    cw = (
        _pick(rng, COUNT_WORDS[s.count])
        if rng.random() < style.count
        else _pick(rng, ("some", "several"))
    )
    variants = [f"{cw} {size}{c} {pl}"]
    if c:
        variants.append(
            f"{cw} {size}{pl} with {c} roofs" if st.shape in _ROOFED else f"{cw} {size}{pl} in {c}"
        )
    return re.sub(r"\s+", " ", _pick(rng, variants))


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,;:.])", r"\1", text)
    text = re.sub(r"([,;:])(\s*[,;:])+", r"\1", text)
    text = text.rstrip(",;: ")
    return text[:1].upper() + text[1:] + "."


def _facts(s: Scene, rng: np.random.Generator, style: CaptionStyle) -> tuple[str, str, list[str]]:
    """(scene noun phrase, position phrase, extra 'with ...' phrases) of one caption."""
    st = SCENE_BY_KEY[s.scene]
    scene = _pick(rng, st.names)
    extras: list[str] = []
    if s.ground and rng.random() < style.ground:
        if rng.random() < 0.5:
            scene = with_adjective(scene, _pick(rng, GROUND_ADJ[s.ground]))
        else:
            extras.append(_pick(rng, GROUND_CLAUSES[s.ground]))
    pos = ""
    if rng.random() < style.position:
        where = _pick(rng, POSITIONS[s.region]) if s.region else ""
        rel = _pick(rng, relation_phrases(s))
        pos = _pick(rng, [p for p in (where, rel, f"{rel} {where}".strip()) if p])
    layouts = layout_phrases(s.layout)
    if layouts and rng.random() < style.layout:
        extras.append("with " + _pick(rng, layouts))
    if s.trees and rng.random() < style.trees:
        extras.append(_pick(rng, TREE_PHRASES[s.trees]))
    order = rng.permutation(len(extras))
    return scene, pos, [extras[int(i)] for i in order]


def _join(extras: list[str]) -> str:
    if len(extras) <= 1:
        return "".join(extras)
    return ", ".join(extras[:-1]) + " and " + extras[-1]


def human_caption(
    s: Scene, frame: int, rng: np.random.Generator, style: CaptionStyle = HUMAN
) -> str:
    """One human-style caption of ``s`` in sentence frame ``frame`` (0..N_FRAMES-1)."""
    if style.detailed and rng.random() < style.detailed:
        style = DETAILED
    scene, pos, extras = _facts(s, rng, style)
    objs = object_phrase(s, rng, style)
    plural = s.count != 1
    be = "are" if plural else "is"
    there = _pick(rng, THERE_PL if plural else THERE_SG)
    ext = _join(extras)
    if frame == 0:
        text = f"{_pick(rng, OPENERS)} {scene} with {objs} {pos}" + (f", {ext}" if ext else "")
    elif frame == 1:
        text = f"{there} {objs} {pos} in this {_pick(rng, VIEWS)} of {scene}" + (
            f" {ext}" if ext else ""
        )
    elif frame == 2:
        text = f"{scene} {ext}; {objs} {be} {pos}" if pos else f"{scene} {ext}; {objs} {be} here"
    elif frame == 3:
        text = f"{objs} {be} {pos or 'visible'} in {scene}" + (f" {ext}" if ext else "")
    elif frame == 4:
        text = f"in this {_pick(rng, VIEWS)} of {scene} {there} {objs} {pos}" + (
            f", {ext}" if ext else ""
        )
    elif frame == 5:
        text = f"{_pick(rng, _VIEW_A)} showing {objs} {pos} in {scene}" + (f" {ext}" if ext else "")
    elif frame == 6:
        text = f"{scene}" + (f" {ext}" if ext else "") + f": {objs} {pos}"
    else:
        text = f"{objs} can be seen {pos} in {scene}" + (f" {ext}" if ext else "")
    return _clean(text)


N_FRAMES = 8


def machine_caption(
    s: Scene, frame: int, rng: np.random.Generator, style: CaptionStyle = MACHINE
) -> str:
    """A captioning model's style: a few fixed frames, attributes listed in a fixed order."""
    st = SCENE_BY_KEY[s.scene]
    scene = st.names[0]
    if s.ground and rng.random() < style.ground:
        scene = with_adjective(scene, GROUND_ADJ[s.ground][0])
    sg, pl = st.noun
    parts = []
    if s.count and rng.random() < style.count:
        parts.append(COUNT_WORDS[s.count][0])
    elif s.count == 0:
        parts.append("many")
    if s.size and rng.random() < style.size:
        parts.append(s.size)
    if rng.random() < style.color:
        parts.append(s.color_phrase)
    parts.append(sg if s.count == 1 else pl)
    objs = " ".join(parts)
    tail = []
    if s.region and rng.random() < style.position:
        tail.append(POSITIONS[s.region][0])
    layouts = layout_phrases(s.layout)
    if layouts and rng.random() < style.layout:
        tail.append("with " + layouts[0])
    if s.trees and rng.random() < style.trees:
        tail.append(TREE_PHRASES[s.trees][0])
    rest = " ".join(tail)
    head = ("an aerial image of", "a satellite image of", "the image shows")[frame % 3]
    return _clean(f"{head} {scene} with {objs} {rest}")


def captions_for(
    s: Scene, rng: np.random.Generator, k: int = 5, machine: bool = False
) -> list[str]:
    """``k`` distinct captions of one scene (human style, or machine style)."""
    make, n_frames = (machine_caption, 3) if machine else (human_caption, N_FRAMES)
    order = [int(t) for t in rng.permutation(n_frames)]
    out: list[str] = []
    for i in range(k):
        frame = order[i % n_frames]
        for _ in range(50):
            cap = make(s, frame, rng)
            if cap not in out:
                break
            frame = int(rng.integers(n_frames))
        out.append(cap)
    return out


# -- reading captions back ---------------------------------------------------------------------
# Whole-word phrases of the values a caption can contradict unambiguously. "a" (one object) is
# left out of the counts: it also opens most captions.
_COUNT_PHRASES = {n: tuple(p for p in w if p != "a") for n, w in COUNT_WORDS.items()} | {0: MANY}
# Scene furniture whose words are also attribute values ("a red running track" names no object
# color, "lots of trees" no object count); masked before colors, counts and sizes are read.
_FURNITURE = (
    *(p for ps in TREE_PHRASES.values() for p in ps),
    "lots of trees",
    "many trees",
    "green grass",
    "green area",
    "green park",
    "blue lake",
    "red running track",
    "small park",
    "small airport",
    "large parking",
    "one can see",
    "one bank",
)


def _phrases(phrases: list[str] | tuple[str, ...]) -> re.Pattern:
    alts = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<![a-z])(?:{alts})(?![a-z])")


_FURNITURE_RE = _phrases(_FURNITURE)
_OTHER_TREES = {
    v: _phrases([p for w, ps in TREE_PHRASES.items() if w != v for p in ps]) for v in TREE_PHRASES
}
_OTHER_COUNTS = {
    n: _phrases([p for m, ps in _COUNT_PHRASES.items() if m != n for p in ps])
    for n in _COUNT_PHRASES
}
_OTHER_SIZES = {
    v: _phrases([p for w, ps in SIZE_WORDS.items() if w != v for p in ps]) for v in SIZE_WORDS
}
_COLOR_WORDS = frozenset(COLORS) - {"green"}  # "green" also names the ground


def contradicts(shown: Scene, caption: str) -> bool:
    """Whether ``caption`` names an object color, an object count, a size or an amount of trees
    that the image showing ``shown`` does not have.

    A lower bound on wrong captions: the scene type, layout, position and ground are not read,
    nor are words outside the world's phrases. The world's own captions of what an image shows
    are not flagged (none of the 10,000 captions of 2,000 real training images, nor of the
    generated ones whose image matches them; tested on a small world)."""
    t = caption.lower()
    if shown.trees is not None and _OTHER_TREES[shown.trees].search(t):
        return True
    t = _FURNITURE_RE.sub(" ", t)
    if set(re.findall(r"[a-z]+", t)) & (_COLOR_WORDS - set(shown.colors)):
        return True
    if shown.count != 1 and _OTHER_COUNTS[shown.count].search(t):
        return True
    return shown.size is not None and bool(_OTHER_SIZES[shown.size].search(t))

"""Captions of synthetic-aerial scenes: varied templates and synonyms over the scene attributes.

Each caption states the scene type, the objects (count, color, noun) and where they are (a
position, a relation to the scene's big feature, or both) and usually the layout, so a single
changed word weakens a match without always destroying it.
"""

from __future__ import annotations

import re

import numpy as np
from vladv_plugins.synthetic_world import (
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
_VIEW_A = ("an aerial photo", "a satellite image", "an aerial image", "a top-down view",
           "an overhead image", "a remote sensing image")


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def object_phrase(s: Scene, rng: np.random.Generator) -> str:
    """'three red planes', 'a house with a blue roof', 'many red-roofed houses' ..."""
    st = SCENE_BY_KEY[s.scene]
    sg, pl = st.noun
    c = s.color_phrase
    if s.count == 0:
        many = _pick(rng, MANY)
        if s.color2:
            return _pick(rng, (f"{many} houses with {c} roofs", f"{many} {c} roofs",
                               f"{many} small houses with {c} roofs"))
        return _pick(rng, (f"{many} houses with {c} roofs", f"{many} {c}-roofed houses",
                           f"{many} {c} roofs", f"{many} small houses with {c} roofs"))
    cw = _pick(rng, COUNT_WORDS[s.count])
    if s.count == 1:
        variants = [f"{cw} {c} {sg}"]
        if st.shape in _ROOFED:
            variants.append(f"{cw} {sg} with a {c} roof")
        else:
            variants.append(f"{cw} {sg} painted {c}")
        phrase = _pick(rng, variants)
        if phrase.startswith("a ") and cw == "a":
            phrase = _article(phrase[2:]) + phrase[1:]
        return phrase
    variants = [f"{cw} {c} {pl}", f"{cw} {c} {pl}"]
    variants.append(f"{cw} {pl} with {c} roofs" if st.shape in _ROOFED else f"{cw} {pl} in {c}")
    return _pick(rng, variants)


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,;:.])", r"\1", text)
    text = re.sub(r"([,;:])\1+", r"\1", text)
    text = text.rstrip(",;: ")
    return text[:1].upper() + text[1:] + "."


def _caption(s: Scene, template: int, rng: np.random.Generator) -> str:
    st = SCENE_BY_KEY[s.scene]
    scene = _pick(rng, st.names)
    objs = object_phrase(s, rng)
    plural = s.count != 1
    be = "are" if plural else "is"
    there = _pick(rng, THERE_PL if plural else THERE_SG)
    pos = _pick(rng, POSITIONS[s.region]) if s.region else ""
    layouts = layout_phrases(s.layout)
    lay = _pick(rng, layouts) if layouts else ""
    rel = _pick(rng, relation_phrases(s))
    view = _pick(rng, VIEWS)
    opener = _pick(rng, OPENERS)
    if template == 0:
        text = f"{opener} {scene} with {objs} {pos}" + (f" and {lay}" if lay else f" {rel}")
    elif template == 1:
        text = f"{there} {objs} {pos} in this {view} of {scene}" + (f", with {lay}" if lay else "")
    elif template == 2:
        head = f"{scene} with {lay}" if lay else scene
        text = f"{head}; {objs} {be} {pos} {rel}"
    elif template == 3:
        text = f"{objs} {be} {rel} {pos} of {scene}" if pos else f"{objs} {be} {rel} in {scene}"
        if lay and not pos:
            text += f" with {lay}"
    elif template == 4:
        text = f"in this {view} of {scene} {there} {objs} {pos}" + (f" and {lay}" if lay else "")
    elif template == 5:
        text = f"{_pick(rng, _VIEW_A)} showing {objs} {rel} in {scene}" + (f", {pos}" if pos else "")
    elif template == 6:
        text = (f"{scene}: {lay}, and {objs} {pos}" if lay else f"{scene}: {objs} {pos}, {rel}")
    else:
        text = (f"{_pick(rng, _VIEW_A)} of {scene} showing {lay} and {objs} {rel}" if lay
                else f"{there} {objs} {rel} {pos} in {scene}")
    return _clean(text)


N_TEMPLATES = 8


def captions_for(s: Scene, rng: np.random.Generator, k: int = 5) -> list[str]:
    """``k`` distinct captions of one scene, from distinct templates where possible."""
    order = [int(t) for t in rng.permutation(N_TEMPLATES)]
    out: list[str] = []
    for i in range(k):
        template = order[i % N_TEMPLATES]
        for _ in range(50):
            cap = _caption(s, template, rng)
            if cap not in out:
                break
            template = int(rng.integers(N_TEMPLATES))
        out.append(cap)
    return out

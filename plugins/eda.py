"""Augmenter plugin ``eda`` (Easy Data Augmentation, docs/algorithms.md#eda) and the caption pools.

EDA follows jasonwei20/eda_nlp ``code/eda.py`` operation for operation (SR, RI, RS, RD; one
operation per augmented sentence; ``⌊num_aug/4⌋+1`` sentences per enabled operation, shuffled,
truncated to ``num_aug``, the cleaned original appended last), with three deliberate differences:
randomness comes from a private :class:`random.Random` (never the global one), synonym lists keep
WordNet order instead of ``set`` order (so ``synonyms[0]`` and results do not depend on
``PYTHONHASHSEED``), and empty "synonyms" (lemmas without letters) are dropped.

Synonyms come from WordNet through NLTK's reader (the kit's :func:`vladv.kit.text.load_wordnet`
says where it is found; the stop words are :data:`vladv.kit.text.STOP_WORDS`).
The pool machinery (caching, deduplication) is :class:`vladv.pools.PoolAugmenter`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import vladv
from vladv.console import track
from vladv.kit.pools import PoolAugmenter, image_seed
from vladv.kit.text import STOP_WORDS, load_wordnet

# Kept for code written before the kit (tests); new code calls vladv.kit.text.locate_wordnet.
from vladv.kit.text import locate_wordnet as _locate_wordnet  # noqa: E402, F401
from vladv.options import option
from vladv.types import Context, ImageTextDataset

__all__ = [
    "EDA",
    "EdaOptions",
    "clean_text",
    "eda",
    "get_synonyms",
    "random_deletion",
    "random_insertion",
    "random_swap",
    "synonym_replacement",
    "wordnet_synonyms",
]

Synonyms = Callable[[str], list[str]]

_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz ")


def get_synonyms(word: str, wordnet: Any) -> list[str]:
    """WordNet synonyms of ``word`` in WordNet order (synsets, then lemmas), cleaned like EDA."""
    out: dict[str, None] = {}
    for synset in wordnet.synsets(word):
        for lemma in synset.lemmas():
            name = lemma.name().replace("_", " ").replace("-", " ").lower()
            name = "".join(c for c in name if c in _LETTERS).strip()
            if name:
                out[name] = None
    out.pop(word, None)
    return list(out)


def wordnet_synonyms(ctx: Context | None = None) -> Synonyms:
    """``word -> synonyms`` backed by WordNet, memoized."""
    wordnet = load_wordnet(ctx)
    memo: dict[str, list[str]] = {}

    def synonyms(word: str) -> list[str]:
        if word not in memo:
            memo[word] = get_synonyms(word, wordnet)
        return memo[word]

    return synonyms


# ----------------------------------------------------------------------------------------------
# EDA operations (docs/algorithms.md#eda)
# ----------------------------------------------------------------------------------------------
def clean_text(line: str) -> str:
    """EDA's ``get_only_chars``: lower-case letters and single spaces only."""
    line = line.replace("’", "").replace("'", "").replace("-", " ").replace("\t", " ")
    line = line.replace("\n", " ").lower()
    line = "".join(c if c in _LETTERS else " " for c in line)
    return re.sub(" +", " ", line).strip()


def synonym_replacement(
    words: list[str], n: int, rng: random.Random, synonyms: Synonyms
) -> list[str]:
    """Replace *all occurrences* of up to ``n`` distinct non-stop-words by a random synonym."""
    new_words = list(words)
    candidates = list(dict.fromkeys(w for w in words if w not in STOP_WORDS))
    rng.shuffle(candidates)
    replaced = 0
    for word in candidates:
        options = synonyms(word)
        if options:
            choice = rng.choice(options)
            new_words = [choice if w == word else w for w in new_words]
            replaced += 1
        if replaced >= n:
            break
    return " ".join(new_words).split(" ")  # multi-word synonyms become several words


def _add_word(new_words: list[str], rng: random.Random, synonyms: Synonyms) -> None:
    options: list[str] = []
    tries = 0
    while not options:
        options = synonyms(new_words[rng.randint(0, len(new_words) - 1)])
        tries += 1
        if tries >= 10:
            return
    new_words.insert(rng.randint(0, len(new_words) - 1), options[0])


def random_insertion(words: list[str], n: int, rng: random.Random, synonyms: Synonyms) -> list[str]:
    """``n`` times: insert the first synonym of a random word (≤ 10 tries) at a random position."""
    new_words = list(words)
    for _ in range(n):
        _add_word(new_words, rng, synonyms)
    return new_words


def random_swap(words: list[str], n: int, rng: random.Random) -> list[str]:
    """``n`` times: swap two random positions (≤ 3 retries to draw a second, different one)."""
    new_words = list(words)
    for _ in range(n):
        i = j = rng.randint(0, len(new_words) - 1)
        tries = 0
        while j == i:
            j = rng.randint(0, len(new_words) - 1)
            tries += 1
            if tries > 3:
                break
        if j != i:
            new_words[i], new_words[j] = new_words[j], new_words[i]
    return new_words


def random_deletion(words: list[str], p: float, rng: random.Random) -> list[str]:
    """Drop each word with probability ``p``; a single word stays; if all go, keep a random one."""
    if len(words) == 1:
        return list(words)
    kept = [w for w in words if rng.uniform(0, 1) > p]
    return kept if kept else [words[rng.randint(0, len(words) - 1)]]


def eda(
    sentence: str,
    alpha_sr: float = 0.1,
    alpha_ri: float = 0.1,
    alpha_rs: float = 0.1,
    p_rd: float = 0.1,
    num_aug: float = 9,
    *,
    rng: random.Random | None = None,
    synonyms: Synonyms | None = None,
) -> list[str]:
    """``num_aug`` augmented sentences of ``sentence`` followed by the cleaned original (last).

    Each augmented sentence uses one operation; an operation with a zero alpha is disabled.
    ``num_aug < 1`` keeps each candidate with probability ``num_aug / #candidates``.
    """
    rng = rng if rng is not None else random.Random(0)
    synonyms = synonyms if synonyms is not None else wordnet_synonyms()
    sentence = clean_text(sentence)
    words = [w for w in sentence.split(" ") if w]
    if not words:
        return [sentence]
    n = len(words)
    per_op = int(num_aug / 4) + 1
    out: list[str] = []
    if alpha_sr > 0:
        out += [
            " ".join(synonym_replacement(words, max(1, int(alpha_sr * n)), rng, synonyms))
            for _ in range(per_op)
        ]
    if alpha_ri > 0:
        out += [
            " ".join(random_insertion(words, max(1, int(alpha_ri * n)), rng, synonyms))
            for _ in range(per_op)
        ]
    if alpha_rs > 0:
        out += [" ".join(random_swap(words, max(1, int(alpha_rs * n)), rng)) for _ in range(per_op)]
    if p_rd > 0:
        out += [" ".join(random_deletion(words, p_rd, rng)) for _ in range(per_op)]
    out = [clean_text(s) for s in out]
    rng.shuffle(out)
    if num_aug >= 1:
        out = out[: int(num_aug)]
    elif out:
        keep = num_aug / len(out)
        out = [s for s in out if rng.uniform(0, 1) < keep]
    return [*out, sentence]


# ----------------------------------------------------------------------------------------------
# The plugin
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EdaOptions:
    alpha_sr: float = option(
        0.1, "synonym replacement: n = max(1, ⌊α·words⌋); 0 disables", min=0, max=1
    )
    alpha_ri: float = option(
        0.1, "random insertion: n = max(1, ⌊α·words⌋); 0 disables", min=0, max=1
    )
    alpha_rs: float = option(0.1, "random swap: n = max(1, ⌊α·words⌋); 0 disables", min=0, max=1)
    p_rd: float = option(
        0.1, "random deletion: drop probability per word; 0 disables", min=0, max=1
    )
    num_aug: int = option(4, "augmented sentences per ground-truth caption", min=1, max=64)
    seed: int = option(-1, "seed of the pools (-1: the run seed)", min=-1)

    def __post_init__(self) -> None:
        if not (self.alpha_sr or self.alpha_ri or self.alpha_rs or self.p_rd):
            raise ValueError("at least one of alpha_sr, alpha_ri, alpha_rs, p_rd must be > 0")


class EDA(PoolAugmenter):
    """EDA on every ground-truth caption: ``num_aug`` new captions each, tied to its image."""

    name = "eda"

    def generate(self, dataset: ImageTextDataset) -> list[list[str]]:
        o = self.options
        synonyms = wordnet_synonyms(self.ctx)
        out: list[list[str]] = []
        for i in track(range(len(dataset)), "eda pools", self.ctx):
            rng = random.Random(image_seed(self.seed, i, self.name))
            cands: list[str] = []
            for t in dataset.img2txt[i]:
                cands += eda(
                    dataset.captions[t],
                    o.alpha_sr,
                    o.alpha_ri,
                    o.alpha_rs,
                    o.p_rd,
                    o.num_aug,
                    rng=rng,
                    synonyms=synonyms,
                )[:-1]
            out.append(cands)
        return out


def prepare_eda(options: EdaOptions, ctx: Context, force: bool = False) -> None:
    """Check that WordNet loads (and build vladv's managed copy of a system WordNet)."""
    load_wordnet(ctx)


@vladv.hookimpl
def vladv_augmenters():
    yield vladv.AugmenterSpec(
        name="eda",
        summary="EDA text augmentation (synonym replace/insert, swap, delete; WordNet)",
        options=EdaOptions,
        factory=EDA,
        modality="text",
        prepare=prepare_eda,
    )

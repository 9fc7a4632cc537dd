"""The plugin author's kit: the building blocks vladv's own attacks, defenses and augmenters use.

First-party plugins are built on exactly this API, as a third-party plugin would be, and none
imports another plugin's module (tests/test_kit.py checks both). The guide, with an attack built
on each engine, is docs/kit.md.

- :mod:`vladv.kit.gradient` — the projected-gradient engine: :func:`projected_gradient` (ascent
  on any objective in an L∞/L2 ball, input views, momentum, random starts), :func:`project`,
  :func:`random_delta`, :func:`draw_random` and SGA's set-level objective
  (:func:`caption_sums`, :func:`caption_set_loss`);
- :mod:`vladv.kit.words` — the word-substitution search (:class:`WordSubstitutionSearch`,
  BERT-Attack; :func:`load_search` builds one over a masked LM by name) and its scores
  (:class:`TextScore`, :func:`image_guided_score`, :func:`kl_score`; :class:`TextEmbeddingCache`
  reuses their embeddings exactly), :data:`FILTER_WORDS`, :data:`WORD_PATTERN`;
- :mod:`vladv.kit.mlm` — masked language models: :func:`get_mlm` / :func:`ensure_mlm`,
  :class:`MaskedLM` (batched, cached top-k), the embedded ``vladv-tiny-mlm``;
- :mod:`vladv.kit.text` — :data:`STOP_WORDS` and the offline WordNet reader :func:`load_wordnet`;
- :mod:`vladv.kit.hub` — :func:`quiet_transformers`, :func:`hub_offline`;
- :mod:`vladv.kit.training` — the trainer (:func:`train`, :class:`PairSampler`,
  :class:`TrainingOptions`) and :func:`contrastive_loss`;
- :mod:`vladv.kit.pools` — caption pools (:class:`PoolAugmenter`, :func:`build_text_pool`);
- :mod:`vladv.kit.seeds` — where random draws come from (:func:`step_generator`,
  :func:`image_seed`).

The most used names are importable from ``vladv.kit`` directly; every public name from its module.
"""

from vladv.kit.gradient import (
    View,
    caption_set_loss,
    caption_sums,
    draw_random,
    project,
    projected_gradient,
    random_delta,
)
from vladv.kit.hub import hub_offline, quiet_transformers
from vladv.kit.mlm import EMBEDDED_MLM, MaskedLM, MLMTopK, ensure_mlm, get_mlm
from vladv.kit.pools import PoolAugmenter, build_text_pool
from vladv.kit.seeds import image_seed, step_generator
from vladv.kit.text import STOP_WORDS, load_wordnet
from vladv.kit.training import PairSampler, TrainBatch, TrainingOptions, contrastive_loss, train
from vladv.kit.words import (
    FILTER_WORDS,
    WORD_PATTERN,
    ImageGuidedScore,
    KLScore,
    TextEmbeddingCache,
    TextScore,
    WordSubstitutionSearch,
    image_guided_score,
    kl_score,
    load_search,
)

__all__ = [
    "EMBEDDED_MLM",
    "FILTER_WORDS",
    "MODULES",
    "STOP_WORDS",
    "WORD_PATTERN",
    "ImageGuidedScore",
    "KLScore",
    "MLMTopK",
    "MaskedLM",
    "PairSampler",
    "PoolAugmenter",
    "TextEmbeddingCache",
    "TextScore",
    "TrainBatch",
    "TrainingOptions",
    "View",
    "WordSubstitutionSearch",
    "build_text_pool",
    "caption_set_loss",
    "caption_sums",
    "contrastive_loss",
    "draw_random",
    "ensure_mlm",
    "get_mlm",
    "hub_offline",
    "image_guided_score",
    "image_seed",
    "kl_score",
    "load_search",
    "load_wordnet",
    "project",
    "projected_gradient",
    "quiet_transformers",
    "random_delta",
    "step_generator",
    "train",
]

MODULES = ("gradient", "words", "mlm", "text", "hub", "training", "pools", "seeds")
"""The kit's modules (each lists its public names in its ``__all__``)."""

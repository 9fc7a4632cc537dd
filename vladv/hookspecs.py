"""Hook specifications of vladv (pluggy project name ``vladv``).

A plugin is a module (or object) with functions marked ``@vladv.hookimpl`` whose names match the
hooks below. Each hook takes no arguments and returns an iterable of spec records; a module may
implement any subset. First-party and third-party plugins are registered the same way, through the
``vladv`` entry-point group. The full reference with an example per hook is ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from vladv.types import KINDS, AttackSpec, AugmenterSpec, BackboneSpec, DatasetSpec, DefenseSpec

PROJECT = "vladv"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vladv_backbones() -> Iterable[BackboneSpec]:
    """Register vision-language backbones.

    Return (or yield) :class:`~vladv.types.BackboneSpec` records. A backbone's factory is called as
    ``factory(options, ctx)`` and returns a :class:`~vladv.backbone.Backbone`: a dual encoder taking
    [0, 1] pixels and strings, with differentiable preprocessing and L2-normalized embeddings.
    """


@hookspec
def vladv_datasets() -> Iterable[DatasetSpec]:
    """Register image-caption datasets.

    Return :class:`~vladv.types.DatasetSpec` records. The factory is called as
    ``factory(options, ctx, split)`` with ``split`` "train" or "test" and returns an
    :class:`~vladv.types.ImageTextDataset` whose ``img2txt`` / ``txt2img`` follow file order.
    """


@hookspec
def vladv_attacks() -> Iterable[AttackSpec]:
    """Register adversarial attacks.

    Return :class:`~vladv.types.AttackSpec` records with a ``modality`` (image, text or
    multimodal). The factory ``factory(options, ctx)`` returns an :class:`~vladv.types.Attack` whose
    ``perturb(backbone, batch, generator)`` returns adversarial images and texts within its
    ``threat_model``; vladv measures and records the budgets actually used.
    """


@hookspec
def vladv_defenses() -> Iterable[DefenseSpec]:
    """Register defenses.

    Return :class:`~vladv.types.DefenseSpec` records. The factory ``factory(options, ctx)`` returns
    a :class:`~vladv.types.Defense` whose ``fit(backbone, train, augmenters)`` returns the defended
    backbone; vladv caches the result by configuration hash.
    """


@hookspec
def vladv_augmenters() -> Iterable[AugmenterSpec]:
    """Register training-pair augmenters (the 1:N relationship).

    Return :class:`~vladv.types.AugmenterSpec` records. The factory ``factory(options, ctx)``
    returns an :class:`~vladv.types.Augmenter` producing extra captions per image (text augmenters)
    or transformed image batches (image augmenters).
    """


HOOKS: dict[str, str] = {kind: f"vladv_{kind}s" for kind in KINDS}
"""Each kind's hook: ``vladv_backbones``, ``vladv_datasets``, ... (``vladv_<kind>s``)."""

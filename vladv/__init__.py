"""vladv: attack and defend vision-language models, one plugin at a time."""

from vladv.hookspecs import hookimpl
from vladv.options import NoOptions, option
from vladv.types import (
    Attack,
    AttackOutput,
    AttackSpec,
    Augmenter,
    AugmenterSpec,
    BackboneSpec,
    Context,
    DatasetSpec,
    Defense,
    DefenseSpec,
    ImageTextDataset,
    PairBatch,
    ThreatModel,
)

__version__ = "0.1.0"

__all__ = [
    "Attack", "AttackOutput", "AttackSpec", "Augmenter", "AugmenterSpec", "BackboneSpec", "Context",
    "DatasetSpec", "Defense", "DefenseSpec", "ImageTextDataset", "NoOptions", "PairBatch",
    "ThreatModel", "hookimpl", "option", "__version__",
]

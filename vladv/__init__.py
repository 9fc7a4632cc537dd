"""vladv: attack and defend vision-language models, one plugin at a time.

``import vladv`` gives what plugins and scripts use: the spec records and base classes,
``hookimpl``, ``option``, ``get_registry()`` (the process-wide plugin registry), ``run`` (the
runner behind ``vladv run``, :func:`vladv.experiment.run`) and ``report``
(:func:`vladv.reports.report`);
``run``, ``report``, ``vladv.Backbone`` and the submodules (``vladv.testing``,
``vladv.backbone``, ...) load on first access.
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from vladv import plugins
from vladv.hookspecs import hookimpl
from vladv.options import NoOptions, option
from vladv.plugins import get_registry
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

if TYPE_CHECKING:  # what the lazy names below are, for type checkers and editors
    from vladv.backbone import Backbone
    from vladv.experiment import run
    from vladv.reports import report

_LAZY = {
    # the runner behind `vladv run` (explicit signature: vladv.experiment.run)
    "run": ("vladv.experiment", "run"),
    # tables, CSVs, plots, gallery and index.html of a folder of records: vladv.reports.report
    "report": ("vladv.reports", "report"),
    "Backbone": ("vladv.backbone", "Backbone"),
}


def __getattr__(name: str) -> Any:
    """Lazy ``vladv.run``, ``vladv.report``, ``vladv.Backbone`` and the submodules."""
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if not name.startswith("_") and importlib.util.find_spec(f"vladv.{name}") is not None:
        return importlib.import_module(f"vladv.{name}")
    raise AttributeError(f"module 'vladv' has no attribute {name!r}")


__all__ = [
    "Attack",
    "AttackOutput",
    "AttackSpec",
    "Augmenter",
    "AugmenterSpec",
    "Backbone",
    "BackboneSpec",
    "Context",
    "DatasetSpec",
    "Defense",
    "DefenseSpec",
    "ImageTextDataset",
    "NoOptions",
    "PairBatch",
    "ThreatModel",
    "get_registry",
    "hookimpl",
    "option",
    "plugins",
    "report",
    "run",
    "__version__",
]

"""vladv: attack and defend vision-language models, one plugin at a time.

``import vladv`` gives what plugins and scripts use: the spec records and base classes, ``hookimpl``,
``option``, ``get_registry()`` (the process-wide plugin registry), ``run`` and ``report``;
``vladv.Backbone`` and the submodules (``vladv.testing``, ``vladv.backbone``, ...) load on first
access.
"""

import importlib
import importlib.util
from typing import Any

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


def run(**kwargs):
    """Run an experiment grid and return its records; same arguments as ``vladv run``.

    See :func:`vladv.experiment.run` (e.g. ``vladv.run(defense=["none", "mat"], attack="sga")``).
    """
    from vladv.experiment import run as _run

    return _run(**kwargs)


def report(directory, output=None):
    """Write the tables, CSVs, plots, gallery and index.html of the records in ``directory``.

    See :func:`vladv.reports.report`; returns the aggregated rows, the written files and the
    warnings (one line per skipped file or example).
    """
    from vladv.reports import report as _report

    return _report(directory, output)


def __getattr__(name: str) -> Any:
    """Lazy ``vladv.Backbone`` and submodules (``vladv.testing``, ``vladv.backbone``, ...)."""
    if name == "Backbone":
        from vladv.backbone import Backbone

        return Backbone
    if not name.startswith("_") and importlib.util.find_spec(f"vladv.{name}") is not None:
        return importlib.import_module(f"vladv.{name}")
    raise AttributeError(f"module 'vladv' has no attribute {name!r}")


__all__ = [
    "Attack", "AttackOutput", "AttackSpec", "Augmenter", "AugmenterSpec", "Backbone",
    "BackboneSpec", "Context", "DatasetSpec", "Defense", "DefenseSpec", "ImageTextDataset",
    "NoOptions", "PairBatch", "ThreatModel", "get_registry", "hookimpl", "option", "plugins",
    "report", "run", "__version__",
]

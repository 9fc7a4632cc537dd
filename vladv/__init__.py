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

__all__ = [
    "Attack", "AttackOutput", "AttackSpec", "Augmenter", "AugmenterSpec", "BackboneSpec", "Context",
    "DatasetSpec", "Defense", "DefenseSpec", "ImageTextDataset", "NoOptions", "PairBatch",
    "ThreatModel", "hookimpl", "option", "report", "run", "__version__",
]

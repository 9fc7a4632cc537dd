"""The trainer defenses share, and its losses (docs/kit.md; details in :mod:`vladv.training`).

- :class:`PairSampler`: deterministic batches of images with one pool text each (no batch holds
  two positives of one image); :class:`TrainBatch` is what a loss function receives.
- :class:`TrainingOptions`: the optimization options (subclass it for a defense's own options);
  ``options.schedule()`` gives the :class:`Schedule` :func:`train` runs.
- :func:`train`: AdamW with warmup and cosine decay, autocast, progress, resumable checkpoints;
  it optimizes the parameters it is given and freezes the rest meanwhile.
- :func:`contrastive_loss`: CLIP's symmetric InfoNCE; :func:`step_generator`: the generator of
  one step's random draws (same seed and step, same draws, across resumes).
"""

from vladv.training import (
    PairSampler,
    Schedule,
    TrainBatch,
    TrainingOptions,
    contrastive_loss,
    step_generator,
    train,
    train_autocast,
)

__all__ = [
    "PairSampler",
    "Schedule",
    "TrainBatch",
    "TrainingOptions",
    "contrastive_loss",
    "step_generator",
    "train",
    "train_autocast",
]

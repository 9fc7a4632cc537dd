"""Hugging Face helpers shared by plugins that load ``transformers`` models (docs/kit.md).

:func:`quiet_transformers` silences transformers' warnings and progress bars while a model loads
(vladv reports errors itself and draws its own progress); :func:`hub_offline` tells whether the
environment forbids hub downloads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["hub_offline", "quiet_transformers"]


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@contextlib.contextmanager
def quiet_transformers(progress: bool = False) -> Iterator[None]:
    """No transformers warnings; no tqdm bars unless ``progress`` (vladv draws its own)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()

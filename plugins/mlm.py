"""Moved: the masked-LM interface is :mod:`vladv.kit.mlm` (docs/kit.md).

This module is no plugin (no entry point names it) and no plugin imports it; it re-exports the
kit's names so that code written before the kit (``from vladv_plugins.mlm import get_mlm``) keeps
working. New code imports :mod:`vladv.kit.mlm`.
"""

from vladv.kit.hub import quiet_transformers  # noqa: F401
from vladv.kit.mlm import (  # noqa: F401
    EMBEDDED_MLM,
    LENGTH_BUCKET,
    MaskedLM,
    MLMTopK,
    TinyMLMConfig,
    build_tokenizer,
    ensure_mlm,
    get_mlm,
    mask_tokens,
    masked_accuracy,
    mlm_path,
    prepare_mlm,
    save_random_mlm,
    train_tiny_mlm,
)

"""The ``clip`` plugin's backbone class: an open_clip model behind vladv's Backbone contract.

A private helper of the ``clip`` plugin (:mod:`vladv_plugins.clip` and its pretraining helper
:mod:`vladv_plugins.clip_pretrain` both use it; it imports neither, so they import no loop).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import open_clip
import torch
from open_clip.transformer import text_global_pool
from torch import nn

from vladv.backbone import Backbone

__all__ = ["ClipBackbone", "TextTower", "encode_text"]


def encode_text(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)``, computed only up to each caption's end.

    For an open_clip ``CLIP`` whose text tower is causal and pools the end token (every CLIP
    text tower), padding after a caption's end token cannot change its embedding, so the
    sequence is cut after the longest caption (rounded up to 8): the same result, for a fraction
    of the work on short captions (the default context is 77 tokens on real CLIP, 64 on the
    embedded one). Other models use their own ``encode_text``.

    Large no-grad fp32 batches on a CPU go further (see :func:`_row_blocks`): their texts are
    grouped by their own length (rounded up to 8), each group cut at that length and computed
    in row blocks of :data:`ROW_BLOCK` texts, each distinct text once. A text's embedding then
    depends on the text alone, not on the batch it came in with, and nothing is computed for the
    padding of shorter texts in a batch with long ones (about 1.9× faster on the world's captions
    than one cut for all).
    """
    if not _pools_end_token(model) or tokens.ndim != 2:
        return model.encode_text(tokens)
    lengths = _cut_lengths(tokens)
    if _blockable(tokens):
        out: torch.Tensor | None = None
        for n in sorted(set(lengths.tolist())):
            rows = torch.nonzero(lengths == n).squeeze(1)
            # each distinct text once (rows are independent here): repeats cost nothing
            unique, inverse = torch.unique(tokens[rows, :n], dim=0, return_inverse=True)
            emb = _row_blocks(model, unique, lambda t, n=n: _cut(model, t, n))[inverse]
            if out is None:
                out = emb.new_empty((tokens.shape[0], *emb.shape[1:]))
            out[rows] = emb
        return out if out is not None else model.encode_text(tokens)
    n = int(lengths.max()) if tokens.numel() else tokens.shape[1]
    if n == tokens.shape[1]:
        return model.encode_text(tokens)
    return _cut(model, tokens[:, :n], n)


def _pools_end_token(model: nn.Module) -> bool:
    """Whether ``model`` is an open_clip ``CLIP`` with a causal text tower pooling its end token."""
    return (
        type(model) is open_clip.CLIP
        and getattr(model, "attn_mask", None) is not None
        and getattr(model, "text_pool_type", "argmax") == "argmax"
    )


def _cut_lengths(tokens: torch.Tensor) -> torch.Tensor:
    """Each row's used length (pad id 0 after the end token) rounded up to 8, at most the
    context length."""
    used = (tokens != 0).sum(1)
    return ((used + 7) // 8 * 8).clamp(min=min(8, tokens.shape[1]), max=tokens.shape[1])


def _cut(model: nn.Module, tokens: torch.Tensor, n: int) -> torch.Tensor:
    """The text tower of ``model`` on ``tokens[:, :n]`` (positions and causal mask cut to n)."""
    tokens = tokens[:, :n]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:n].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:n, :n]))
    x = text_global_pool(x, tokens, "argmax")
    proj = model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
    return x


ROW_BLOCK = 64
"""Texts per block of a large no-grad text batch on a CPU (64 × ≤ 64 tokens stay in cache)."""
TAIL_STEP = 8
"""A length group's last, partial block is cut to a multiple of this many rows where exact."""
_BLOCKS_EXACT: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, int], bool]] = (
    weakref.WeakKeyDictionary()
)
_TAILS_EXACT: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, int, int], bool]] = (
    weakref.WeakKeyDictionary()
)


def _blockable(tokens: torch.Tensor) -> bool:
    """Whether a text batch runs in length groups and row blocks: large, no-grad, fp32, CPU."""
    return tokens.shape[0] > ROW_BLOCK and _block_mode(tokens.device)


def _block_mode(device: torch.device) -> bool:
    """Whether large text batches on ``device`` run in row blocks now: CPU, no grad, no autocast."""
    return (
        device.type == "cpu"
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
    )


def rows_independent_from(model: nn.Module, device: torch.device) -> int | None:
    """The smallest batch from which :func:`encode_text` gives each text batch-independent bits
    now (row blocks), or None: not a blocked model or mode, or a block check came out unequal."""
    if not _pools_end_token(model) or not _block_mode(device):
        return None
    if False in _BLOCKS_EXACT.get(model, {}).values():
        return None
    return ROW_BLOCK + 1


def _filled(tokens: torch.Tensor, rows: int) -> torch.Tensor:
    """``tokens`` filled up to ``rows`` rows with copies of its first row."""
    fill = rows - tokens.shape[0]
    return torch.cat([tokens, tokens[:1].expand(fill, -1)]) if fill > 0 else tokens


def _row_blocks(
    model: nn.Module, tokens: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``encode(tokens)`` computed in blocks of exactly ROW_BLOCK rows (see :func:`_tail_block`
    for the last one).

    Every op of the text tower treats rows independently, and the GEMMs run the same kernels on
    every block (all blocks have exactly ROW_BLOCK rows), so each row's embedding is
    bit-identical to the whole batch's — and, as every block has the same shape, independent of
    the other rows; a much smaller working set makes it about twice as fast. As the guarantee is
    the kernels' (CPU BLAS picks kernels by shape: a batch of 2 or 3 texts, for instance, gives
    other last bits than the same texts among many), the first batch of each sequence length and
    thread count that fills more than one block is computed both ways, and blocks are used only
    if they give exactly the same result.
    """
    rows = tokens.shape[0]
    key = (tokens.shape[1], torch.get_num_threads())
    verdicts = _BLOCKS_EXACT.setdefault(model, {})
    if verdicts.get(key) is False:
        return encode(tokens)
    whole = rows - rows % ROW_BLOCK
    parts = [encode(tokens[start : start + ROW_BLOCK]) for start in range(0, whole, ROW_BLOCK)]
    if whole < rows:
        parts.append(_tail_block(model, tokens[whole:], encode, key))
    blocks = torch.cat(parts)
    if key not in verdicts and rows > ROW_BLOCK:  # one block is a block: nothing to check
        direct = encode(tokens)
        verdicts[key] = torch.equal(blocks, direct)
        return direct
    return blocks


def _tail_block(
    model: nn.Module,
    tokens: torch.Tensor,
    encode: Callable[[torch.Tensor], torch.Tensor],
    key: tuple[int, int],
) -> torch.Tensor:
    """The embeddings of a length group's last ``r < ROW_BLOCK`` texts, as a full block gives
    them, computed in a block of ``r`` rounded up to :data:`TAIL_STEP` rows (filled with copies
    of the first text) where that block shape is known to give the full block's bits.

    A shape seen for the first time (per sequence length and thread count) is computed both
    ways and kept only if the bits agree (here, on an AMD EPYC, blocks of 4 rows or more agree
    with one thread and multiples of 4 with two); until then, and where they do not, the tail is
    filled up to a full block, as every block was before (a quarter of the rows of SGA's text
    calls were such filling).
    """
    rows = tokens.shape[0]
    size = -(-rows // TAIL_STEP) * TAIL_STEP
    tails = _TAILS_EXACT.setdefault(model, {})
    shape = (*key, size)
    if size < ROW_BLOCK and tails.get(shape):
        return encode(_filled(tokens, size))[:rows]
    full = encode(_filled(tokens, ROW_BLOCK))[:rows]
    if size < ROW_BLOCK and shape not in tails:
        tails[shape] = torch.equal(encode(_filled(tokens, size))[:rows], full)
    return full


class TextTower(nn.Module):
    """The text parameters of an open_clip ``CLIP`` (kept at its top level) under one module."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.transformer = model.transformer
        self.token_embedding = model.token_embedding
        self.positional_embedding = model.positional_embedding
        self.ln_final = model.ln_final
        if model.text_projection is not None:  # an nn.Linear or an nn.Parameter
            self.text_projection = model.text_projection


class ClipBackbone(Backbone):
    """An open_clip model behind the vladv :class:`~vladv.backbone.Backbone` contract."""

    name = "clip"

    def __init__(self, model: nn.Module, tokenizer: Any, info: dict[str, Any] | None = None):
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        size = size if isinstance(size, int) else min(size)
        super().__init__(
            size,
            cfg.get("mean", open_clip.OPENAI_DATASET_MEAN),
            cfg.get("std", open_clip.OPENAI_DATASET_STD),
            cfg.get("interpolation", "bicubic"),
        )
        self.model = model
        self.tokenizer = tokenizer
        self.info = dict(info or {})
        self.eval()

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(texts))

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        return encode_text(self.model, tokens)

    def text_rows_independent_from(self) -> int | None:
        return rows_independent_from(self.model, self.device)

    @property
    def image_tower(self) -> nn.Module:
        return self.model.visual

    @property
    def text_tower(self) -> nn.Module:
        text = getattr(self.model, "text", None)
        return text if isinstance(text, nn.Module) else TextTower(self.model)

    @property
    def logit_scale_param(self) -> nn.Parameter:
        return self.model.logit_scale

    @property
    def token_embedding(self) -> nn.Module | None:
        text = getattr(self.model, "text", None)  # an HF text tower (the ALIGN-style model)
        if isinstance(text, nn.Module):
            inner = getattr(text, "transformer", None)
            get = getattr(inner, "get_input_embeddings", None)
            return get() if callable(get) else None
        return getattr(self.model, "token_embedding", None)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, **self.info}

    def open_clip_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights with open_clip's own key names (loadable by plain open_clip)."""
        return self.model.state_dict()

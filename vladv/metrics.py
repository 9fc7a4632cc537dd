"""Retrieval metrics: TR/IR R@1/5/10, RSUM, and both ASR conventions.

Ranks follow docs/algorithms.md#retrieval-metrics-and-asr: TR rank of image i = best position of
any of its captions in
row i sorted by similarity (descending); IR rank of caption t = position of its image in column t.
Ties are broken deterministically: among equal scores, the lower gallery index ranks first.
Similarities are computed in chunks, so large galleries never need the full matrix in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

KS = (1, 5, 10)
METRIC_KEYS = ("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "rsum")


SHARED_SCORES_MAX = 1 << 26
"""Largest image × caption similarity matrix (elements; 256 MB in float32) computed once and
shared by both directions; larger galleries compute each direction's chunks separately."""


def _ranks_of_targets(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    targets: torch.Tensor,
    chunk: int,
    scores_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """Best rank (0 = first) over the gallery items ``targets[q]`` (-1 = padding) of each query q.

    Rank of item t in row s: #(s > s_t) + #(s == s_t and j < t), i.e. a stable descending sort.
    The best target is the one with the highest score s* and, among targets scoring exactly s*,
    the lowest index t*: any other target ranks behind it. So one comparison pass over the row
    counts #(s > s*), and ties (s == s*, j < t*) are counted only in rows where an item other
    than t* scores exactly s*. ``scores_t``: the (gallery × queries) similarities if already
    computed (their transpose is used instead of ``queries @ gallery.T``).
    """
    ranks = torch.empty(queries.shape[0], dtype=torch.long)
    n = gallery.shape[0]
    for start in range(0, queries.shape[0], chunk):
        t = targets[start : start + chunk].to(gallery.device)  # (c, m)
        if scores_t is None:
            scores = queries[start : start + chunk] @ gallery.T  # (c, N)
        else:
            scores = scores_t[:, start : start + chunk].T.contiguous()
        valid = t >= 0
        s_t = scores.gather(1, t.clamp(min=0)).masked_fill(~valid, float("-inf"))  # (c, m)
        best = s_t.max(1, keepdim=True).values  # (c, 1); NaN if a target scores NaN
        at_best = valid & (s_t == best)
        first = t.masked_fill(~at_best, n).min(1, keepdim=True).values  # t*, n if none
        r = (scores > best).sum(1, dtype=torch.int32).long()  # (int32 sums: half the time)
        equal = (scores >= best).sum(1, dtype=torch.int32).long() - r  # items scoring exactly s*
        rows = (equal > 1).nonzero().flatten()  # items other than t* score exactly s*
        if len(rows):
            idx = torch.arange(n, device=gallery.device)
            tie = (scores[rows] == best[rows]) & (idx < first[rows])
            r[rows] += tie.sum(1)
        r = r.masked_fill(~valid.any(1), torch.iinfo(torch.long).max)  # no target at all
        ranks[start : start + chunk] = r.cpu()
    return ranks


def retrieval_ranks(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    img2txt: Sequence[Sequence[int]],
    txt2img: Sequence[int],
    chunk: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-query ranks ``(tr_rank (N_img,), ir_rank (N_txt,))`` from L2-normalized embeddings.

    The similarity matrix is computed once for both directions when it has at most
    :data:`SHARED_SCORES_MAX` elements (a dot product is the same number either way round).
    """
    image_emb = image_emb.float()
    text_emb = text_emb.to(image_emb.device).float()
    max_caps = max(len(c) for c in img2txt)
    gt = torch.full((len(img2txt), max_caps), -1, dtype=torch.long)
    for i, caps in enumerate(img2txt):
        gt[i, : len(caps)] = torch.as_tensor(list(caps), dtype=torch.long)
    shared = None
    if image_emb.shape[0] * text_emb.shape[0] <= SHARED_SCORES_MAX:
        shared = image_emb @ text_emb.T
    tr = _ranks_of_targets(image_emb, text_emb, gt, chunk, shared.T if shared is not None else None)
    ir = _ranks_of_targets(
        text_emb,
        image_emb,
        torch.as_tensor(list(txt2img), dtype=torch.long)[:, None],
        chunk,
        shared,
    )
    return tr, ir


def metrics_from_ranks(tr_rank: torch.Tensor, ir_rank: torch.Tensor) -> dict[str, float]:
    """R@1/5/10 for TR and IR in percent, and RSUM (their sum)."""
    out: dict[str, float] = {}
    for prefix, ranks in (("tr", tr_rank), ("ir", ir_rank)):
        for k in KS:
            out[f"{prefix}_r{k}"] = round(100.0 * int((ranks < k).sum()) / max(len(ranks), 1), 6)
    out["rsum"] = round(sum(out[f"{m}_r{k}"] for m in ("tr", "ir") for k in KS), 6)
    return out


def retrieval_metrics(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    img2txt: Sequence[Sequence[int]],
    txt2img: Sequence[int],
) -> dict[str, float]:
    """TR/IR R@1/5/10 and RSUM from embeddings."""
    return metrics_from_ranks(*retrieval_ranks(image_emb, text_emb, img2txt, txt2img))


def asr_conditional(clean_rank: torch.Tensor, adv_rank: torch.Tensor, k: int = 1) -> float | None:
    """SGA's ASR@k: % of queries correct at rank < k before the attack that fail after it.

    ``None`` when no query was correct before the attack (the ratio is undefined).
    """
    clean_ok = clean_rank < k
    n = int(clean_ok.sum())
    if n == 0:
        return None
    return 100.0 * float((clean_ok & (adv_rank >= k)).sum()) / n


def asr_delta(clean: dict[str, float], adversarial: dict[str, float], key: str) -> float:
    """Co-Attack's ASR: clean R@k − adversarial R@k (percentage points)."""
    return clean[key] - adversarial[key]


def asr_block(
    clean_ranks: tuple[torch.Tensor, torch.Tensor],
    adv_ranks: tuple[torch.Tensor, torch.Tensor],
    clean: dict[str, float],
    adversarial: dict[str, float],
) -> dict[str, float | None]:
    """Both ASR conventions at R@1 for TR and IR, named explicitly."""
    return {
        "tr_r1_conditional": asr_conditional(clean_ranks[0], adv_ranks[0], 1),
        "ir_r1_conditional": asr_conditional(clean_ranks[1], adv_ranks[1], 1),
        "tr_r1_delta": asr_delta(clean, adversarial, "tr_r1"),
        "ir_r1_delta": asr_delta(clean, adversarial, "ir_r1"),
    }

"""Budgets measured on an attack's actual outputs (never taken from its options)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def image_budget(clean: torch.Tensor, adversarial: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image L∞ and L2 norms of the perturbation, and the pixel range of the outputs."""
    delta = (adversarial.detach().float() - clean.detach().float()).flatten(1)
    return {
        "linf": delta.abs().amax(1).cpu(),
        "l2": delta.norm(dim=1).cpu(),
        "min_pixel": adversarial.detach().flatten(1).amin(1).float().cpu(),
        "max_pixel": adversarial.detach().flatten(1).amax(1).float().cpu(),
    }


def words_changed(clean: str, adversarial: str) -> int:
    """Word-level edit distance (substitutions, insertions, deletions) between two captions."""
    a, b = clean.split(), adversarial.split()
    if a == b:
        return 0
    prev = list(range(len(b) + 1))
    for i, wa in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, wb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (wa != wb))
        prev = cur
    return prev[-1]


def text_budget(clean: Sequence[str], adversarial: Sequence[str]) -> torch.Tensor:
    """Words changed per caption."""
    if len(clean) != len(adversarial):
        raise ValueError("an attack must return one adversarial caption per caption")
    return torch.tensor(
        [words_changed(c, a) for c, a in zip(clean, adversarial, strict=True)], dtype=torch.long
    )

"""Attack plugin ``co-attack``: Co-Attack (Zhang, Yi, Sang; ACM MM 2022) for dual encoders.

docs/algorithms.md#co-attack (``MultiModalAttacker.run_before_fusion``, adv=4):

1. t' = BERT-Attack(t), image-independent, with the KL objective
   KL(softmax(e_T(t)) ‖ softmax(e_T(t'))) (``kl_score``);
2. e_T' = f_T(t'), e_I = f_I(x) (no grad);
3. δ ~ U[0, ε] ("positive" start), ``steps`` sign steps of ``step_size`` (default 1.25·ε/steps =
   0.25/255), ascending
   L = KL(softmax(e_I) ‖ softmax(f_I(x+δ))) + α·KL(softmax(e_T') ‖ softmax(f_I(x+δ))), α = 3,
   with the ε-ball and [0, 1] box projection after every step.

**Unit — where vladv differs from the reference.** The reference iterates over (image, caption)
*pairs*: every image is attacked once per caption (5× on Flickr30k) against that one adversarial
caption, and the evaluation keeps the adversarial image of the image's *last* caption (its
features overwrite the earlier ones). vladv attacks each image ONCE against all its adversarial
captions: the α term is averaged over the image's captions,
α · 1/|C(i)| Σ_{j∈C(i)} KL(softmax(e_T'_j) ‖ softmax(f_I(x_i+δ_i))), so each caption weighs as
much as the reference's single caption does, and no caption's pull is silently dropped.
With ``reference_compat`` the reference's unit is reproduced: the text term uses only each image's
last caption — the pair whose image the reference keeps (the other pairs' images are discarded,
and each pair's attack is independent, so attacking only the kept pair gives the same result).
Other small differences: the random start is clamped to the [0, 1] box before the first forward
(the reference's first forward sees the unclamped start); the reference's final re-run of the
text attack is skipped (it is deterministic and returns the same t').
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

import vladv
from vladv.kit.gradient import projected_gradient
from vladv.options import MAX_STEPS, option
from vladv.types import Attack, AttackOutput, AttackSpec, Context, PairBatch, ThreatModel

__all__ = ["CoAttack", "CoAttackOptions", "co_attack_loss", "vladv_attacks"]


def _kl_rows(target: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """Row-wise KL(softmax(target) ‖ softmax(adv)): KLDivLoss(log_softmax(adv), softmax(target))."""
    log_q = adv.float().log_softmax(-1)
    return F.kl_div(log_q, target.float().softmax(-1), reduction="none").sum(-1)


def co_attack_loss(
    adv_emb: torch.Tensor,
    clean_emb: torch.Tensor,
    adv_text_emb: torch.Tensor,
    txt2img: torch.Tensor,
    alpha: float,
    last_pair: bool = False,
) -> torch.Tensor:
    """Co-Attack's image objective for B images with their adversarial captions (to maximize).

    mean_i [KL(softmax(e_I,i) ‖ softmax(ẽ_i)) + α·mean_{j∈C(i)} KL(softmax(e_T',j) ‖ softmax(ẽ_i))]
    with L2-normalized embeddings ("batchmean" over images, as the reference's KLDivLoss).
    ``last_pair``: the reference's unit — the text term of each image's *last* caption only (the
    reference attacks every (image, caption) pair and keeps the image of the last one).
    """
    n = adv_emb.shape[0]
    clean_term = _kl_rows(clean_emb, adv_emb)
    if last_pair:
        rows = torch.arange(len(txt2img), device=adv_emb.device)
        last = torch.full((n,), -1, dtype=torch.long, device=adv_emb.device).scatter_reduce(
            0, txt2img, rows, "amax"
        )
        has = last >= 0
        text_term = torch.zeros(n, device=adv_emb.device)
        text_term[has] = _kl_rows(adv_text_emb[last[has]], adv_emb[has])
        return (clean_term + alpha * text_term).sum() / n
    text_kl = _kl_rows(adv_text_emb, adv_emb[txt2img])  # (T,)
    counts = torch.zeros(n, device=adv_emb.device).index_add_(0, txt2img, torch.ones_like(text_kl))
    per_image = torch.zeros(n, device=adv_emb.device).index_add_(0, txt2img, text_kl)
    text_term = per_image / counts.clamp_min(1)
    return (clean_term + alpha * text_term).sum() / n


@dataclass(frozen=True)
class CoAttackOptions:
    eps: float = option(2 / 255, "L∞ radius in [0, 1] pixel space", min=0, max=1)
    steps: int = option(10, "PGD iterations", min=0, max=MAX_STEPS)
    step_size: float | None = option(
        None, "step size (none: 1.25·eps/steps, as the reference)", min=0
    )
    alpha: float = option(3.0, "weight of the adversarial-text KL term", min=0)
    k: int = option(10, "MLM candidates per word", min=1)
    max_words: int = option(1, "words changed per caption", min=0)
    mlm: str = option(
        "vladv-tiny-mlm", "masked LM for candidates (built-in name, HF name or folder)"
    )
    reference_compat: bool = option(
        False,
        "reproduce the reference: its text attack's quirks "
        "(MLM off-by-one, BERT 30-token path) and its unit "
        "(each image against its last caption)",
    )


class CoAttack(Attack):
    """Co-Attack: KL BERT-Attack on the text, then KL-guided image PGD from a positive start."""

    modality = "multimodal"

    def __init__(self, options: CoAttackOptions, ctx: Context):
        super().__init__(options, ctx)
        self._search: Any = None

    @property
    def threat_model(self) -> ThreatModel:
        return ThreatModel("multimodal", "linf", self.options.eps, self.options.max_words)

    @property
    def step_size(self) -> float:
        o = self.options
        if o.step_size is not None:
            return o.step_size
        return 1.25 * o.eps / max(o.steps, 1)

    @property
    def search(self) -> Any:
        """The word-substitution search, built on first use (factories stay cheap)."""
        if self._search is None:
            from vladv.kit.words import load_search

            o = self.options
            self._search = load_search(
                o.mlm, self.ctx, k=o.k, max_words=o.max_words, reference_compat=o.reference_compat
            )
        return self._search

    def perturb(self, backbone, batch: PairBatch, generator: torch.Generator) -> AttackOutput:
        o = self.options
        images, texts = batch.images, list(batch.texts)
        txt2img = batch.txt2img.to(images.device)
        adv_texts = texts
        if o.max_words > 0:
            from vladv.kit.words import kl_score

            with self.ctx.autocast():
                clean_txt = batch.clean_text_embeddings(backbone)
            adv_texts = self.search.run(texts, kl_score(backbone, clean_txt, self.ctx))
        with torch.no_grad(), self.ctx.autocast():
            clean_img = batch.clean_image_embeddings(backbone).to(images.device)
            adv_txt = backbone.encode_text(adv_texts).float().to(images.device)

        def objective(x: torch.Tensor) -> torch.Tensor:
            return co_attack_loss(
                backbone.encode_image(x),
                clean_img,
                adv_txt,
                txt2img,
                o.alpha,
                last_pair=o.reference_compat,
            )

        adv = projected_gradient(
            objective,
            images,
            eps=o.eps,
            step_size=self.step_size,
            steps=o.steps,
            norm="linf",
            random_start="positive",
            generator=generator,
            autocast=self.ctx.autocast,
        )
        return AttackOutput(adv, list(adv_texts))


def _prepare(options, ctx: Context, force: bool = False) -> None:
    """``vladv pretrain``: build (or load) the masked LM ahead of the first attack."""
    from vladv.kit.mlm import ensure_mlm

    if options.max_words > 0:
        ensure_mlm(options.mlm, ctx, force)


@vladv.hookimpl
def vladv_attacks():
    yield AttackSpec(
        name="co-attack",
        modality="multimodal",
        options=CoAttackOptions,
        factory=CoAttack,
        prepare=_prepare,
        summary="Co-Attack: KL BERT-Attack on captions, then KL image PGD (one image per "
        "caption set)",
    )

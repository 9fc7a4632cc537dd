"""Attack plugin ``pgd``: projected gradient descent on the image.

Built on the kit's projected-gradient engine (:func:`vladv.kit.gradient.projected_gradient`,
docs/kit.md; docs/algorithms.md#projected-gradient-descent-pgd). The attack pushes every image
away from its *own caption set*: maximize −Σ_{j ∈ C(i)} cos(f_I(x'_i), f_T(t_j)) (one
adversarial image per image, SGA's unit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import vladv

# Re-exported for code written before the kit (tests, older scripts); new code imports vladv.kit.
from vladv.kit.gradient import (  # noqa: F401, E402
    Norm,
    Start,
    View,
    caption_set_loss,
    caption_sums,
    draw_random,
    project,
    projected_gradient,
    random_delta,
)
from vladv.options import MAX_STEPS, option
from vladv.types import Attack, AttackOutput, AttackSpec, Context, PairBatch, ThreatModel

__all__ = ["PGD", "PGDOptions", "vladv_attacks"]


# ----------------------------------------------------------------------------------------------
# The `pgd` attack plugin
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PGDOptions:
    eps: float = option(
        2 / 255, "radius of the ball in [0, 1] pixel space (L∞: at most 1)", min=0, max=1e4
    )
    step_size: float = option(0.5 / 255, "step size per iteration (L∞: at most 1)", min=0, max=1e4)
    steps: int = option(10, "number of iterations", min=0, max=MAX_STEPS)
    norm: Norm = option("linf", "norm of the ball: linf or l2")
    random_start: Start = option("uniform", "start: uniform in the ball, positive U[0, ε], none")
    momentum: float = option(
        0.0, "momentum on the mean-|g|-normalized gradient (0: none)", min=0, max=1
    )

    def __post_init__(self) -> None:
        if self.norm == "linf" and max(self.eps, self.step_size) > 1:
            raise ValueError(
                f"with norm linf, eps and step_size must be at most 1 (pixels lie "
                f"in [0, 1]); got eps={self.eps:g}, step_size={self.step_size:g}"
            )


class PGD(Attack):
    """Image PGD away from each image's own caption set (captions embedded once, no grad)."""

    modality = "image"

    def __init__(self, options: PGDOptions, ctx: Context):
        super().__init__(options, ctx)

    @property
    def threat_model(self) -> ThreatModel:
        return ThreatModel("image", self.options.norm, self.options.eps)

    def perturb(self, backbone, batch: PairBatch, generator: torch.Generator) -> AttackOutput:
        o = self.options
        images = batch.images
        with self.ctx.autocast():
            text_emb = batch.clean_text_embeddings(backbone)
        sums = caption_sums(text_emb, batch.txt2img, images.shape[0])

        def objective(x: torch.Tensor) -> torch.Tensor:
            return caption_set_loss(backbone.encode_image(x), sums)

        adv = projected_gradient(
            objective,
            images,
            eps=o.eps,
            step_size=o.step_size,
            steps=o.steps,
            norm=o.norm,
            random_start=o.random_start,
            momentum=o.momentum,
            generator=generator,
            autocast=self.ctx.autocast,
        )
        return AttackOutput(adv, list(batch.texts))


@vladv.hookimpl
def vladv_attacks():
    yield AttackSpec(
        name="pgd",
        modality="image",
        options=PGDOptions,
        factory=PGD,
        summary="Projected gradient descent on the image away from its own captions (L∞/L2)",
    )

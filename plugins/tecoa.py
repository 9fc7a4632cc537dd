"""Defense ``tecoa``: text-guided contrastive adversarial training for retrieval (TeCoA-ITR).

docs/algorithms.md#tecoa. TeCoA fine-tunes only the image tower against PGD that maximizes the
classification loss over text embeddings. For retrieval the "classes" are the in-batch captions:
L = CE_rows(s · f_I(x') · f_T(t)ᵀ, diag), x' = PGD maximizing the same L; the text tower is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

import vladv
from vladv.backbone import Backbone
from vladv.errors import OptionError
from vladv.kit.gradient import projected_gradient
from vladv.kit.training import PairSampler, TrainBatch, TrainingOptions, step_generator, train
from vladv.options import MAX_STEPS, option
from vladv.types import Augmenter, Defense, DefenseSpec, ImageTextDataset


@dataclass(frozen=True)
class TeCoAOptions(TrainingOptions):
    eps: float = option(2 / 255, "L-inf radius of the inner PGD (pixel space)", min=0, max=1)
    pgd_steps: int = option(2, "inner PGD steps (TeCoA's README run uses 2)", min=0, max=MAX_STEPS)
    pgd_step_size: float = option(1 / 255, "inner PGD step size", min=0, max=1)
    norm: Literal["linf", "l2"] = option("linf", "norm of the inner ball")


def image_text_ce(
    image_emb: torch.Tensor, text_emb: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """CE of each image over the in-batch captions (row i's class is caption i)."""
    logits = scale * image_emb.float() @ text_emb.float().T
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


class TeCoA(Defense):
    def fit(
        self, backbone: Backbone, train_ds: ImageTextDataset, augmenters: list[Augmenter]
    ) -> Backbone:
        o: TeCoAOptions = self.options
        ctx = self.ctx
        if augmenters:
            raise OptionError(
                "defense 'tecoa' trains the image tower on ground-truth "
                "pairs only; augmenters apply to 'mat'"
            )

        def loss_fn(batch: TrainBatch) -> torch.Tensor:
            with torch.no_grad():
                text_emb = backbone.encode_text(batch.texts)
                scale = backbone.logit_scale.detach()
            x_adv = projected_gradient(
                lambda x: image_text_ce(backbone.encode_image(x), text_emb, scale),
                batch.images,
                eps=o.eps,
                step_size=o.pgd_step_size,
                steps=o.pgd_steps,
                norm=o.norm,
                random_start="uniform",
                generator=step_generator(ctx.seed, batch.step, "pgd"),
                autocast=ctx.autocast,
            )
            return image_text_ce(backbone.encode_image(x_adv), text_emb, scale)

        sampler = PairSampler(train_ds, o.batch_size, ctx.seed, num_workers=ctx.num_workers)
        train(
            backbone,
            list(backbone.image_tower.parameters()),
            sampler,
            loss_fn,
            o.schedule(),
            ctx,
            self.workdir,
            label="tecoa",
        )
        return backbone


@vladv.hookimpl
def vladv_defenses():
    yield DefenseSpec(
        name="tecoa",
        summary="TeCoA: adversarial fine-tuning of the image tower against in-batch captions",
        options=TeCoAOptions,
        factory=TeCoA,
    )

"""Defense ``fare``: unsupervised adversarial fine-tuning of the image tower (FARE).

docs/algorithms.md#fare: min_φ E_x max_{‖z−x‖∞≤ε} ‖φ(z) − φ_org(x)‖²₂ with φ_org the frozen original
image encoder and *unnormalized* embeddings; inner PGD with momentum 0.9 on the normalized
gradient. No labels and no texts are used.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch

import vladv
from vladv.backbone import Backbone
from vladv.errors import OptionError
from vladv.kit.gradient import projected_gradient
from vladv.kit.training import PairSampler, TrainBatch, TrainingOptions, step_generator, train
from vladv.options import MAX_STEPS, option
from vladv.types import Augmenter, Defense, DefenseSpec, ImageTextDataset


@dataclass(frozen=True)
class FAREOptions(TrainingOptions):
    eps: float = option(2 / 255, "L-inf radius of the inner PGD (FARE²)", min=0, max=1)
    pgd_steps: int = option(10, "inner PGD steps", min=0, max=MAX_STEPS)
    pgd_step_size: float = option(1 / 255, "inner PGD step size", min=0, max=1)
    momentum: float = option(0.9, "inner PGD momentum on the normalized gradient", min=0, max=1)
    norm: Literal["linf", "l2"] = option("linf", "norm of the inner ball")
    clean_weight: float = option(0.0, "weight of the clean-image term (FARE's default 0)", min=0)


def embedding_distance(emb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖φ(z) − φ_org(x)‖²₂ summed over dimensions, averaged over the batch."""
    return (emb.float() - target.float()).pow(2).sum(-1).mean()


class FARE(Defense):
    def fit(
        self, backbone: Backbone, train_ds: ImageTextDataset, augmenters: list[Augmenter]
    ) -> Backbone:
        o: FAREOptions = self.options
        ctx = self.ctx
        if augmenters:
            raise OptionError("defense 'fare' uses no texts; augmenters apply to 'mat'")
        original = copy.deepcopy(backbone).eval().requires_grad_(False)

        def loss_fn(batch: TrainBatch) -> torch.Tensor:
            with torch.no_grad():
                target = original.encode_image(batch.images, normalize=False)
            x_adv = projected_gradient(
                lambda x: embedding_distance(backbone.encode_image(x, normalize=False), target),
                batch.images,
                eps=o.eps,
                step_size=o.pgd_step_size,
                steps=o.pgd_steps,
                norm=o.norm,
                momentum=o.momentum,
                random_start="uniform",
                generator=step_generator(ctx.seed, batch.step, "pgd"),
                autocast=ctx.autocast,
            )
            loss = embedding_distance(backbone.encode_image(x_adv, normalize=False), target)
            if o.clean_weight > 0:
                loss = loss + o.clean_weight * embedding_distance(
                    backbone.encode_image(batch.images, normalize=False), target
                )
            return loss

        sampler = PairSampler(train_ds, o.batch_size, ctx.seed, num_workers=ctx.num_workers)
        train(
            backbone,
            list(backbone.image_tower.parameters()),
            sampler,
            loss_fn,
            o.schedule(),
            ctx,
            self.workdir,
            label="fare",
        )
        return backbone


@vladv.hookimpl
def vladv_defenses():
    yield DefenseSpec(
        name="fare",
        summary="FARE: unsupervised adversarial fine-tuning of the image "
        "tower towards the original embeddings",
        options=FAREOptions,
        factory=FARE,
    )

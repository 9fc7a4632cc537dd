"""Defense ``mat``: multimodal adversarial training with one-to-many (1:N) augmentation.

docs/algorithms.md#mat-and-its-1n-pools (the MAT paper's training details could not be
confirmed; the defaults
below are the documented, claimed ones and every choice is an option):

- per step, adversarial images by PGD (ε 2/255, 2 steps of 1/255, uniform start) ascending the
  contrastive loss against the batch's clean texts;
- adversarial texts by BERT-Attack (1 word, K = 10) guided by the adversarial images (lower
  cosine to the paired image, SGA's objective), against the current model (words ranked by
  BERT-Attack's deletion rule; ``text_importance=gradient`` ranks them by the objective's
  gradient, A2T's rule);
- outer loss: symmetric contrastive loss on the adversarial pairs (``loss=adv``); MMCoA's split
  ``½[L(x', t) + L(x, t')]`` (``loss=split``); or ``adv`` plus a clean term (``loss=adv+clean``);
- 1:N: every image owns a pool (its ground-truth captions ∪ the text augmenters' captions); each
  step draws one text per image from its pool, and no batch holds two positives of one image.
  Image augmenters replace each training image by an augmented view with ``image_aug_prob``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

import vladv
from vladv.backbone import Backbone
from vladv.kit.gradient import projected_gradient
from vladv.kit.pools import build_text_pool
from vladv.kit.training import (
    PairSampler,
    TrainBatch,
    TrainingOptions,
    contrastive_loss,
    step_generator,
    train,
)
from vladv.kit.words import WordSubstitutionSearch, image_guided_score, load_search
from vladv.options import MAX_STEPS, option
from vladv.types import Augmenter, Defense, DefenseSpec, ImageTextDataset


@dataclass(frozen=True)
class MATOptions(TrainingOptions):
    eps: float = option(2 / 255, "L-inf radius of the inner image attack", min=0, max=1)
    pgd_steps: int = option(2, "inner PGD steps", min=0, max=MAX_STEPS)
    pgd_step_size: float = option(1 / 255, "inner PGD step size", min=0, max=1)
    text_words: int = option(1, "words the inner text attack may change (0 = image-only AT)", min=0)
    k: int = option(10, "MLM candidates per word for the inner text attack", min=1)
    text_importance: Literal["deletion", "gradient"] = option(
        "deletion",
        "how the inner text attack ranks words: by deleting each word (BERT-Attack's rule, one "
        "text forward per word) or by the gradient of its objective (A2T's rule, one backward "
        "for the batch; weaker and not faster here: docs/defenses.md)",
    )
    mlm: str = option("vladv-tiny-mlm", "masked LM of the inner text attack (name or folder)")
    text_guidance: Literal["adversarial", "clean"] = option(
        "adversarial", "image that guides the inner text attack"
    )
    loss: Literal["adv", "split", "adv+clean"] = option("adv", "outer loss variant")
    clean_weight: float = option(1.0, "weight of the clean term for loss=adv+clean", min=0)
    towers: Literal["both", "image", "text"] = option("both", "which towers are trained")
    image_aug_prob: float = option(
        0.5, "chance that an image augmenter replaces an image", min=0, max=1
    )


def text_pools(train_ds: ImageTextDataset, augmenters: list[Augmenter]) -> list[list[str]]:
    """Each image's pool: its ground-truth captions, then the text augmenters' new captions."""
    extra = build_text_pool(augmenters, train_ds)
    return [gt + new for gt, new in zip(train_ds.image_captions(), extra, strict=True)]


class MAT(Defense):
    def fit(
        self, backbone: Backbone, train_ds: ImageTextDataset, augmenters: list[Augmenter]
    ) -> Backbone:
        o: MATOptions = self.options
        ctx = self.ctx
        pools = text_pools(train_ds, augmenters)
        image_augs = [a for a in augmenters if a.modality == "image"]
        search: WordSubstitutionSearch | None = (
            load_search(o.mlm, ctx, k=o.k, max_words=o.text_words, importance=o.text_importance)
            if o.text_words > 0
            else None
        )

        def augment_images(batch: TrainBatch) -> torch.Tensor:
            images = batch.images
            for i, aug in enumerate(image_augs):
                g = step_generator(ctx.seed, batch.step, "image-aug", i)
                pick = torch.rand(len(images), generator=g) < o.image_aug_prob
                if bool(pick.any()):
                    views = aug.transform_images(images, g)
                    images = torch.where(pick.to(images.device).view(-1, 1, 1, 1), views, images)
            return images

        def loss_fn(batch: TrainBatch) -> torch.Tensor:
            images = augment_images(batch)
            texts = batch.texts
            with torch.no_grad():
                clean_text = backbone.encode_text(texts)
                scale = backbone.logit_scale.detach()
            x_adv = projected_gradient(
                lambda x: contrastive_loss(backbone.encode_image(x), clean_text, scale),
                images,
                eps=o.eps,
                step_size=o.pgd_step_size,
                steps=o.pgd_steps,
                random_start="uniform",
                generator=step_generator(ctx.seed, batch.step, "pgd"),
                autocast=ctx.autocast,
            )
            t_adv = texts
            if search is not None:
                with torch.no_grad():
                    guide = backbone.encode_image(
                        x_adv if o.text_guidance == "adversarial" else images
                    )
                t_adv = search.run(list(texts), image_guided_score(backbone, guide, ctx))
            scale = backbone.logit_scale
            if o.loss == "split":  # MMCoA: adversarial images with clean texts and vice versa
                return 0.5 * (
                    contrastive_loss(
                        backbone.encode_image(x_adv), backbone.encode_text(texts), scale
                    )
                    + contrastive_loss(
                        backbone.encode_image(images), backbone.encode_text(t_adv), scale
                    )
                )
            loss = contrastive_loss(
                backbone.encode_image(x_adv), backbone.encode_text(t_adv), scale
            )
            if o.loss == "adv+clean":
                loss = loss + o.clean_weight * contrastive_loss(
                    backbone.encode_image(images), backbone.encode_text(texts), scale
                )
            return loss

        towers = {
            "both": [backbone.image_tower, backbone.text_tower],
            "image": [backbone.image_tower],
            "text": [backbone.text_tower],
        }[o.towers]
        params = [p for t in towers for p in t.parameters()] + [backbone.logit_scale_param]
        sampler = PairSampler(
            train_ds, o.batch_size, ctx.seed, pools=pools, num_workers=ctx.num_workers
        )
        train(backbone, params, sampler, loss_fn, o.schedule(), ctx, self.workdir, label="mat")
        return backbone


@vladv.hookimpl
def vladv_defenses():
    yield DefenseSpec(
        name="mat",
        summary="MAT: multimodal adversarial training (PGD images + "
        "BERT-Attack texts) with 1:N augmented pairs",
        options=MATOptions,
        factory=MAT,
    )

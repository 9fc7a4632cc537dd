"""vladv-example-plugin: a third-party attack, installed with pip and found through entry points.

pip install ./examples/vladv-example-plugin
vladv plugins                      # lists `fgsm` from distribution vladv-example-plugin
vladv run --attack fgsm --attack-opt eps=2/255
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import vladv


@dataclass(frozen=True)
class FGSMOptions:
    eps: float = vladv.option(2 / 255, "L-inf radius in [0, 1] pixel space", min=0, max=1)


class FGSM(vladv.Attack):
    """One signed-gradient step that lowers each image's similarity to its own captions."""

    modality = "image"

    @property
    def threat_model(self) -> vladv.ThreatModel:
        return vladv.ThreatModel("image", "linf", self.options.eps)

    def perturb(self, backbone, batch: vladv.PairBatch, generator: torch.Generator):
        with torch.no_grad():
            text_emb = backbone.encode_text(batch.texts)
        x = batch.images.detach().clone().requires_grad_(True)
        with self.ctx.autocast():
            own = (backbone.encode_image(x)[batch.txt2img] * text_emb).sum()
        (grad,) = torch.autograd.grad(own, x)
        adv = (batch.images - self.options.eps * grad.sign()).clamp(0, 1)
        return vladv.AttackOutput(adv.detach(), list(batch.texts))


@vladv.hookimpl
def vladv_attacks():
    yield vladv.AttackSpec(
        name="fgsm",
        summary="One-step FGSM on the image (example plugin)",
        options=FGSMOptions,
        factory=FGSM,
        modality="image",
    )

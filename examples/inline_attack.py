"""An attack plugin defined inline in a script, registered for this process only.

python examples/inline_attack.py
"""

from dataclasses import dataclass

import torch

import vladv
from vladv.plugins import get_registry


@dataclass(frozen=True)
class UniformNoiseOptions:
    eps: float = vladv.option(8 / 255, "L-inf radius", min=0, max=1)


class UniformNoise(vladv.Attack):
    """Random uniform noise in the ε-ball: the baseline every real attack must beat."""

    modality = "image"

    @property
    def threat_model(self):
        return vladv.ThreatModel("image", "linf", self.options.eps)

    def perturb(self, backbone, batch, generator):
        noise = torch.rand(batch.images.shape, generator=generator) * 2 - 1
        adv = batch.images + self.options.eps * noise.to(batch.images.device)
        return vladv.AttackOutput(adv.clamp(0, 1), list(batch.texts))


class InlinePlugin:
    @vladv.hookimpl
    def vladv_attacks(self):
        yield vladv.AttackSpec(
            name="uniform-noise",
            summary="random noise in the ε-ball",
            options=UniformNoiseOptions,
            factory=UniformNoise,
        )


if __name__ == "__main__":
    get_registry().register(InlinePlugin(), name="inline-example")
    for rec in vladv.run(
        attack=["uniform-noise", "pgd"],
        attack_options={"eps": "8/255"},
        output="runs/inline-example",
    ):
        m = rec["metrics"]
        print(
            rec["config"]["attack"]["name"],
            "adv TR@1",
            round(m["adversarial"]["tr_r1"], 1),
            "max ε·255",
            round(m["budget"]["max_linf"] * 255, 2),
        )

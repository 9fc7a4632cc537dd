"""Writes throw-away third-party plugin distributions (dist-info + module) for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

FOO_MODULE = '''
from dataclasses import dataclass

import torch

import vladv
from vladv.testing import tiny_plugin


@dataclass(frozen=True)
class FgsmOptions:
    eps: float = vladv.option(4 / 255, "L-inf radius", min=0, max=1)


class Fgsm(vladv.Attack):
    modality = "image"

    @property
    def threat_model(self):
        return vladv.ThreatModel("image", "linf", self.options.eps)

    def perturb(self, backbone, batch, generator):
        x = batch.images.clone().requires_grad_(True)
        sim = backbone.encode_image(x) @ backbone.encode_text(batch.texts).T.detach()
        own = sim.gather(1, batch.txt2img.view(1, -1).expand(len(x), -1))
        mask = torch.nn.functional.one_hot(batch.txt2img, len(x)).T.float()
        (grad,) = torch.autograd.grad((own * mask).sum(), x)
        adv = (batch.images - self.options.eps * grad.sign()).clamp(0, 1)
        return vladv.AttackOutput(adv.detach(), list(batch.texts))


@vladv.hookimpl
def vladv_attacks():
    yield vladv.AttackSpec(name="foo-fgsm", summary="one-step FGSM from a third-party plugin",
                           options=FgsmOptions, factory=Fgsm, modality="image")


@vladv.hookimpl
def vladv_backbones():
    yield from tiny_plugin.vladv_backbones()


@vladv.hookimpl
def vladv_datasets():
    yield from tiny_plugin.vladv_datasets()
'''

BROKEN_MODULE = "raise RuntimeError('this plugin is broken on purpose')\n"


def write_distribution(site: Path, dist: str, module: str, source: str,
                       entry_name: str | None = None, version: str = "0.1.0") -> Path:
    """Create ``site/<module>.py`` and ``site/<dist>-<version>.dist-info`` with a vladv entry point."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[vladv]\n{entry_name or module} = {module}\n")
    (info / "RECORD").write_text("")
    return site

"""Helpers for testing vladv and vladv plugins without weights, data or a GPU.

- :class:`TinyBackbone`: a deterministic few-thousand-parameter dual encoder.
- :func:`tiny_dataset`: random images with captions built from a small vocabulary.
- :data:`tiny_plugin`: a plugin object providing backbone ``tiny`` and dataset ``tiny``.
- :class:`NoiseAttack`, :func:`noise_attack_spec`, :data:`noise_plugin`: the fake attack (random
  or one-step FGSM noise within ε, optionally a one-word caption change) that tests and examples
  use instead of writing their own.
- :func:`registered_plugin`: register a plugin for the duration of a ``with`` block; a plugin
  already registered through its entry point (an installed package under test) is used as is.
- :func:`isolated_registry`: a fresh process-wide registry for a block (pytest-style isolation).

Example (in a plugin's own test suite; works whether or not the plugin is pip-installed)::

    import vladv_foo
    from vladv.experiment import run
    from vladv.testing import registered_plugin, tiny_plugin

    def test_my_attack():
        with registered_plugin(tiny_plugin), registered_plugin(vladv_foo):
            [rec] = run(backbone="tiny", dataset="tiny", attack="my-attack", progress=False,
                        output=False)  # output=False: records returned, not written
        assert rec["metrics"]["adversarial"]["tr_r1"] <= rec["metrics"]["clean"]["tr_r1"]
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import typing
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from vladv import plugins as _plugins
from vladv.backbone import Backbone
from vladv.data import TensorImageDataset
from vladv.errors import PluginError
from vladv.hookspecs import hookimpl
from vladv.options import option
from vladv.plugins import PluginRegistry, get_registry
from vladv.types import (
    Attack,
    AttackOutput,
    AttackSpec,
    BackboneSpec,
    Context,
    DatasetSpec,
    PairBatch,
    ThreatModel,
)

COLORS = ("red", "green", "blue", "white", "black", "yellow")
THINGS = ("house", "tree", "road", "lake", "field", "ship", "plane", "car")
PLACES = ("near", "beside", "above", "below", "around")


class _TinyText(nn.Module):
    def __init__(self, vocab: int, width: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.proj = nn.Linear(width, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens > 0).float().unsqueeze(-1)
        pooled = (self.embed(tokens) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.proj(pooled)


class TinyBackbone(Backbone):
    """A tiny deterministic CLIP-like model: conv image tower, bag-of-words text tower."""

    name = "tiny"

    def __init__(
        self,
        image_size: int = 16,
        embed_dim: int = 16,
        vocab: int = 512,
        context_length: int = 16,
        seed: int = 0,
    ):
        super().__init__(
            image_size, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), interpolation="bilinear"
        )
        self.vocab, self.context_length, self.seed = vocab, context_length, seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.visual = nn.Sequential(
                nn.Conv2d(3, 8, 3, stride=2, padding=1),
                nn.GELU(),
                nn.Conv2d(8, 16, 3, stride=2, padding=1),
                nn.GELU(),
                nn.AdaptiveAvgPool2d(2),
                nn.Flatten(),
                nn.Linear(64, embed_dim),
            )
            self.text = _TinyText(vocab, 32, embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = [1 + zlib.crc32(w.encode()) % (self.vocab - 1) for w in text.lower().split()]
            ids = ids[: self.context_length]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out

    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)

    @property
    def image_tower(self) -> nn.Module:
        return self.visual

    @property
    def text_tower(self) -> nn.Module:
        return self.text

    @property
    def logit_scale_param(self) -> nn.Parameter:
        return self.log_scale

    @property
    def token_embedding(self) -> nn.Module:
        return self.text.embed

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed}


def tiny_dataset(
    n_images: int = 8,
    captions_per_image: int = 5,
    image_size: int = 16,
    seed: int = 0,
    split: str = "test",
) -> TensorImageDataset:
    """Random images whose captions name their dominant color and a few things (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n_images, 3, image_size, image_size, generator=g)
    captions = []
    for i in range(n_images):
        color = COLORS[int(images[i].mean((1, 2)).argmax()) * 2 % len(COLORS)]
        caps = []
        for _ in range(captions_per_image):
            a, b = torch.randint(len(THINGS), (2,), generator=g).tolist()
            p = int(torch.randint(len(PLACES), (1,), generator=g))
            caps.append(f"a {color} {THINGS[a]} {PLACES[p]} a {THINGS[b]} number {i}")
        captions.append(caps)
    return TensorImageDataset(images, captions, name="tiny", split=split)


@dataclass(frozen=True)
class TinyBackboneOptions:
    image_size: int = option(16, "input resolution", min=4)
    embed_dim: int = option(16, "embedding size", min=2)
    seed: int = option(0, "initialization seed")


@dataclass(frozen=True)
class TinyDatasetOptions:
    n_images: int = option(8, "images per split", min=1)
    captions_per_image: int = option(5, "captions per image", min=1)
    image_size: int = option(16, "image size in pixels", min=4)
    seed: int = option(0, "generation seed")


class TinyPlugin:
    """Provides backbone ``tiny`` and dataset ``tiny`` (register it with
    :func:`registered_plugin`)."""

    @hookimpl
    def vladv_backbones(self):
        yield BackboneSpec(
            name="tiny",
            summary="Tiny deterministic dual encoder for tests",
            options=TinyBackboneOptions,
            factory=lambda o, ctx: TinyBackbone(o.image_size, o.embed_dim, seed=o.seed),
        )

    @hookimpl
    def vladv_datasets(self):
        def load(o: TinyDatasetOptions, ctx: Context, split: str) -> TensorImageDataset:
            salt = 0 if split == "test" else 10_000
            return tiny_dataset(
                o.n_images, o.captions_per_image, o.image_size, o.seed + salt, split
            )

        yield DatasetSpec(
            name="tiny",
            summary="Tiny random image-caption data for tests",
            options=TinyDatasetOptions,
            factory=load,
        )


tiny_plugin = TinyPlugin()


@dataclass(frozen=True)
class NoiseAttackOptions:
    eps: float = option(8 / 255, "L-inf radius in [0, 1] pixel space", min=0, max=1)
    mode: Literal["uniform", "sign", "fgsm"] = option(
        "uniform",
        "uniform: noise in the eps-ball; sign: +-eps per pixel; fgsm: one signed "
        "gradient step away from each image's own captions",
    )
    first_word: str = option(
        "", "when set, replaces the first word of every caption (a one-word text change)"
    )
    sleep: float = option(0.0, "seconds to sleep per batch (tests of interruption)", min=0)


class NoiseAttack(Attack):
    """The fake attack of tests and examples: noise within ε, optionally one changed word.

    Random modes draw only from ``generator`` (a seed changes the noise); ``fgsm`` is
    deterministic. The threat model is image-only unless ``first_word`` is set.
    """

    modality = "image"

    @property
    def threat_model(self) -> ThreatModel:
        o = self.options
        if o.first_word:
            return ThreatModel("multimodal", "linf", o.eps, max_words=1)
        return ThreatModel("image", "linf", o.eps)

    def perturb(
        self, backbone: Backbone, batch: PairBatch, generator: torch.Generator
    ) -> AttackOutput:
        o = self.options
        if o.sleep:
            time.sleep(o.sleep)
        if o.mode == "fgsm":
            text_emb = batch.clean_text_embeddings(backbone)
            x = batch.images.detach().clone().requires_grad_(True)
            own = (backbone.encode_image(x)[batch.txt2img.to(x.device)] * text_emb).sum()
            (grad,) = torch.autograd.grad(own, x)
            step = -grad.sign()
        elif o.mode == "sign":
            step = torch.randint(0, 2, batch.images.shape, generator=generator).float() * 2 - 1
        else:
            step = torch.rand(batch.images.shape, generator=generator) * 2 - 1
        adv = (batch.images + o.eps * step.to(batch.images.device)).clamp(0, 1).detach()
        texts = list(batch.texts)
        if o.first_word:
            texts = [" ".join([o.first_word, *t.split()[1:]]) for t in texts]
        return AttackOutput(adv, texts)


def noise_attack_spec(
    name: str = "noise", summary: str = "noise within eps (vladv.testing)", **defaults: Any
) -> AttackSpec:
    """An :class:`AttackSpec` for :class:`NoiseAttack` named ``name`` whose options default to
    ``defaults`` (any field of :class:`NoiseAttackOptions`)."""
    options: type = NoiseAttackOptions
    if defaults:
        hints = typing.get_type_hints(NoiseAttackOptions)
        fields = {f.name: f for f in dataclasses.fields(NoiseAttackOptions)}
        unknown = sorted(set(defaults) - set(fields))
        if unknown:
            raise TypeError(f"NoiseAttackOptions has no field {', '.join(unknown)}")
        options = dataclasses.make_dataclass(
            "NoiseAttackOptions",
            [
                (
                    n,
                    hints[n],
                    dataclasses.field(default=defaults.get(n, f.default), metadata=f.metadata),
                )
                for n, f in fields.items()
            ],
            frozen=True,
        )
    modality = "multimodal" if defaults.get("first_word") else "image"
    return AttackSpec(
        name=name, summary=summary, options=options, factory=NoiseAttack, modality=modality
    )


class NoisePlugin:
    """Provides attack ``noise`` (:class:`NoiseAttack`); register it with
    :func:`registered_plugin`."""

    @hookimpl
    def vladv_attacks(self) -> Iterator[AttackSpec]:
        yield noise_attack_spec()


noise_plugin = NoisePlugin()


@contextlib.contextmanager
def isolated_registry(load_entry_points: bool = True) -> Iterator[PluginRegistry]:
    """A fresh process-wide registry inside the block (the previous one is restored after).

    With ``load_entry_points=False`` only what the block registers exists, so a test sees
    neither installed third-party plugins nor vladv's own.
    """
    registry = PluginRegistry()
    if load_entry_points:
        registry.load_entry_points()
    previous = _plugins._registry
    _plugins._registry = registry
    try:
        yield registry
    finally:
        _plugins._registry = previous


@contextlib.contextmanager
def registered_plugin(
    plugin: Any, name: str | None = None, registry: PluginRegistry | None = None
) -> Iterator[PluginRegistry]:
    """Register ``plugin`` (module, class instance or object with hookimpls) inside a block.

    A plugin already registered in ``registry`` (a package under test that is also installed,
    loaded through its entry point) is used as it is and left registered after the block; a
    broken one raises :class:`~vladv.errors.PluginError` with its error.
    """
    registry = registry or get_registry()
    existing = registry.name_of(plugin)
    if existing is not None:
        registry.specs("backbone")  # call its hooks: a broken hook shows now
        info = registry.plugins[existing]
        if info.status != "ok":
            raise PluginError(f"plugin '{existing}' is {info.status}: {info.error}")
        yield registry
        return
    name = registry.register(plugin, name=name or f"inline-{type(plugin).__name__}-{id(plugin)}")
    try:
        yield registry
    finally:
        registry.unregister(name)

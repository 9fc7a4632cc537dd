"""Spec records that plugins return, and the objects that flow between them.

The five plugin kinds (backbone, dataset, attack, defense, augmenter) each have a spec record: a
name, a one-line summary, an options dataclass and a factory. The runner resolves options,
calls ``factory(options, ctx)`` and uses the returned object through the base classes below.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

from vladv.options import NoOptions

if TYPE_CHECKING:
    from rich.console import Console

    from vladv.backbone import Backbone

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$")
Modality = Literal["image", "text", "multimodal"]


# ----------------------------------------------------------------------------------------------
# Spec records
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PluginSpec:
    """What a plugin registers: one named, documented, configurable thing of one kind.

    ``factory(options, ctx)`` builds the object (datasets: ``factory(options, ctx, split)``).
    ``prepare(options, ctx, force=False)``, when given, builds cached artifacts ahead of time
    (``vladv pretrain``); factories must stay cheap and load heavy artifacts lazily.
    """

    name: str
    summary: str
    factory: Callable[..., Any]
    options: type = NoOptions
    prepare: Callable[..., None] | None = None
    kind: ClassVar[str] = "plugin"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise ValueError(
                f"invalid {self.kind} name {self.name!r}: use lower-case letters, digits and '-'"
            )
        if not isinstance(self.summary, str) or not self.summary.strip():
            raise ValueError(f"{self.kind} '{self.name}' needs a one-line summary")
        if not callable(self.factory):
            raise ValueError(f"{self.kind} '{self.name}': factory is not callable")
        if not dataclasses.is_dataclass(self.options):
            raise ValueError(f"{self.kind} '{self.name}': options must be a dataclass")


@dataclass(frozen=True)
class BackboneSpec(PluginSpec):
    """A vision-language model: ``factory(options, ctx) -> Backbone``."""

    kind: ClassVar[str] = "backbone"


@dataclass(frozen=True)
class DatasetSpec(PluginSpec):
    """Image-caption data: ``factory(options, ctx, split) -> ImageTextDataset`` (split: train|test).

    Optional, for plugins that build on a dataset without loading its images (the embedded
    models vladv trains on synthetic-aerial reach it this way, through the registry):
    ``captions(options, split) -> list[list[str]]`` gives each image's captions in dataset order,
    exactly the ``factory``'s, without building the images; ``version`` is what the data depends
    on besides the options (a generator version), for the cache keys of things built from it.
    """

    captions: Callable[[Any, str], list[list[str]]] | None = None
    version: int | str | None = None
    kind: ClassVar[str] = "dataset"


@dataclass(frozen=True)
class AttackSpec(PluginSpec):
    """An adversarial attack: ``factory(options, ctx) -> Attack``."""

    modality: Modality = "image"
    kind: ClassVar[str] = "attack"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.modality not in ("image", "text", "multimodal"):
            raise ValueError(f"attack '{self.name}': modality must be image, text or multimodal")


@dataclass(frozen=True)
class DefenseSpec(PluginSpec):
    """A defense: ``factory(options, ctx) -> Defense``."""

    kind: ClassVar[str] = "defense"


@dataclass(frozen=True)
class AugmenterSpec(PluginSpec):
    """A training-pair augmenter: ``factory(options, ctx) -> Augmenter``."""

    modality: Literal["text", "image"] = "text"
    kind: ClassVar[str] = "augmenter"


SPEC_TYPES: dict[str, type[PluginSpec]] = {
    s.kind: s for s in (BackboneSpec, DatasetSpec, AttackSpec, DefenseSpec, AugmenterSpec)
}
KINDS: tuple[str, ...] = tuple(SPEC_TYPES)
"""The kinds of plugin, in the order vladv lists them: backbone, dataset, attack, defense,
augmenter (the one copy: hooks, grids, options tables, listings and the scaffold use it)."""


# ----------------------------------------------------------------------------------------------
# Run context
# ----------------------------------------------------------------------------------------------
@dataclass
class Context:
    """Where and how plugins run: device, precision, seed, cache folder, console."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    seed: int = 0
    home: Path | None = None
    console: Console | None = None
    num_workers: int = 0
    progress: bool = True

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for reduced precision; a no-op for fp32."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def generator(self, *salt: Any) -> torch.Generator:
        """A CPU generator seeded from the run seed and ``salt`` (same inputs, same stream)."""
        from vladv.seeds import derive_seed

        return torch.Generator().manual_seed(derive_seed(self.seed, *salt))

    def cache_dir(self, *parts: str) -> Path:
        from vladv.cache import ensure_dir, vladv_home

        home = self.home or vladv_home()
        if home.exists() and not home.is_dir():
            from vladv.errors import StorageError

            raise StorageError(
                f"the vladv home {home} is a file, not a folder; set VLADV_HOME to a folder"
            )
        return ensure_dir(home.joinpath(*parts), "cache folder")


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------
@dataclass
class PairBatch:
    """A batch of images with *all* their captions.

    ``images``: (B, 3, H, W) float in [0, 1]; ``texts``: T strings; ``txt2img``: (T,) local image
    index of each text; ``image_ids`` (B,) and ``text_ids`` (T,): global ids in the dataset.
    ``image_emb`` / ``text_emb``: the clean embeddings when the runner has them cached (attacks
    read them through :meth:`clean_image_embeddings` / :meth:`clean_text_embeddings`).
    """

    images: torch.Tensor
    texts: list[str]
    txt2img: torch.Tensor
    image_ids: torch.Tensor
    text_ids: torch.Tensor
    image_emb: torch.Tensor | None = None
    text_emb: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> PairBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return dataclasses.replace(
            self,
            images=self.images.to(device),
            txt2img=self.txt2img.to(device),
            image_emb=move(self.image_emb),
            text_emb=move(self.text_emb),
        )

    def clean_image_embeddings(self, backbone: Backbone) -> torch.Tensor:
        """Normalized clean image embeddings (B, D): the runner's cached ones, else computed."""
        if self.image_emb is not None:
            return self.image_emb.float()
        with torch.no_grad():
            return backbone.encode_image(self.images).float()

    def clean_text_embeddings(self, backbone: Backbone) -> torch.Tensor:
        """Normalized clean text embeddings (T, D): the runner's cached ones, else computed."""
        if self.text_emb is not None:
            return self.text_emb.float()
        with torch.no_grad():
            return backbone.encode_text(self.texts).float()

    def __len__(self) -> int:
        return self.images.shape[0]


class ImageTextDataset(torch.utils.data.Dataset, ABC):
    """Images with captions and the explicit maps ``img2txt`` / ``txt2img``, in file order.

    ``dataset[i]`` returns ``(image, i)`` with the image a (3, H, W) float tensor in [0, 1]; a
    DataLoader with :func:`vladv.data.pair_loader` turns indices into :class:`PairBatch` es.
    """

    name: str = "dataset"
    split: str = "test"

    def __init__(self, captions: Sequence[str], img2txt: Sequence[Sequence[int]]):
        self.captions = list(captions)
        self.img2txt = [list(ids) for ids in img2txt]
        self.txt2img = [0] * len(self.captions)
        for i, ids in enumerate(self.img2txt):
            for t in ids:
                self.txt2img[t] = i

    def __len__(self) -> int:
        return len(self.img2txt)

    def image_captions(self) -> list[list[str]]:
        """Each image's captions, in image order."""
        return [[self.captions[t] for t in ids] for ids in self.img2txt]

    @abstractmethod
    def load_image(self, index: int) -> torch.Tensor:
        """The image at ``index`` as a (3, H, W) float tensor in [0, 1]."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.load_image(index), index

    def describe(self) -> dict[str, Any]:
        """Identity of the data, for records: name, split, counts and a hash of the captions."""
        digest = hashlib.sha256("\n".join(self.captions).encode()).hexdigest()[:16]
        return {
            "name": self.name,
            "split": self.split,
            "images": len(self),
            "texts": len(self.captions),
            "captions_sha256": digest,
        }


# ----------------------------------------------------------------------------------------------
# Threat models and attacks
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThreatModel:
    """The budget an attack promises: image ε-ball (pixel space, plus the [0, 1] box), words."""

    modality: Modality
    norm: Literal["linf", "l2"] | None = None
    eps: float = 0.0
    max_words: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.norm == "linf":
            out["eps_255"] = round(self.eps * 255, 6)
        return out


@dataclass
class AttackOutput:
    """Adversarial images (B, 3, H, W) in [0, 1] and adversarial texts (T strings)."""

    images: torch.Tensor
    texts: list[str]


class Attack(ABC):
    """An attack turns a clean batch into an adversarial one within its :class:`ThreatModel`.

    It never changes the model's weights or train/eval mode, and draws randomness only from the
    generator it is given.
    """

    modality: ClassVar[Modality] = "image"

    def __init__(self, options: Any, ctx: Context):
        self.options = options
        self.ctx = ctx

    @property
    @abstractmethod
    def threat_model(self) -> ThreatModel:
        """The budget this attack respects."""

    @abstractmethod
    def perturb(
        self, backbone: Backbone, batch: PairBatch, generator: torch.Generator
    ) -> AttackOutput:
        """Attack ``batch`` against ``backbone`` and return the adversarial batch."""


class Defense(ABC):
    """A defense trains a backbone on the train split into a more robust one.

    ``workdir`` is set by the runner before :meth:`fit`: a folder unique to this configuration
    where the defense keeps resumable checkpoints.
    """

    def __init__(self, options: Any, ctx: Context):
        self.options = options
        self.ctx = ctx
        self.workdir: Path | None = None

    @abstractmethod
    def fit(
        self, backbone: Backbone, train: ImageTextDataset, augmenters: Sequence[Augmenter]
    ) -> Backbone:
        """Return the defended backbone (it may be ``backbone`` itself, trained in place)."""


class Augmenter(ABC):  # noqa: B024 (both methods have a default; a subclass overrides one)
    """An augmenter adds training pairs tied to their source image (the 1:N relationship)."""

    modality: ClassVar[Literal["text", "image"]] = "text"

    def __init__(self, options: Any, ctx: Context):
        self.options = options
        self.ctx = ctx

    def texts_for(self, dataset: ImageTextDataset) -> list[list[str]]:
        """Extra captions per image (text augmenters); image augmenters return none."""
        return [[] for _ in range(len(dataset))]

    def transform_images(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augmented copies of a batch of images (image augmenters); text augmenters return them."""
        return images


def iter_chunks(n: int, size: int) -> Iterator[slice]:
    """Slices ``[0:size], [size:2size], ...`` covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))

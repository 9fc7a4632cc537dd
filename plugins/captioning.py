"""Augmenter plugin ``caption``: cross-modal 1:N augmentation, new captions generated from the
image.

Two captioners behind one interface:

* ``vladv-tiny-captioner`` (default): vladv's embedded captioner
  (:mod:`vladv_plugins.captioning_model`), trained on the synthetic-aerial train captions on first
  use (``vladv pretrain caption``) and cached under ``VLADV_HOME/models``.
* any Hugging Face image-to-text model whose ``generate`` takes ``pixel_values`` (BLIP captioning,
  GIT, VisionEncoderDecoder such as ViT-GPT2), by hub name (already in the local cache) or local
  folder. Nothing is downloaded at run time.

Captions are generated in batches of images on ``ctx.device``, deterministic by seed; each image
gets ``num_captions`` new captions, deduplicated against its ground truth and each other (up to
:data:`MAX_ROUNDS` sampling rounds fill the gaps), cached as a pool (:class:`PoolAugmenter`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

import vladv
from vladv.cache import build_once, config_hash, file_sha256, publish_dir, scratch_dir
from vladv.console import dim_notice, get_console, make_progress
from vladv.errors import VladvError, first_line
from vladv.kit.pools import PoolAugmenter, dedupe_captions, image_seed
from vladv.options import option
from vladv.types import Context, ImageTextDataset, iter_chunks
from vladv_plugins.captioning_model import (
    CaptionerConfig,
    load_captioner,
    sample_captions,
    save_captioner,
    train_captioner,
)

__all__ = [
    "EMBEDDED_CAPTIONER",
    "MAX_ROUNDS",
    "CaptionAugmenter",
    "CaptionOptions",
    "Captioner",
    "HFCaptioner",
    "TinyCaptionerRunner",
    "caption_quality",
    "captioner_config",
    "captioner_path",
    "get_captioner",
    "hf_identity",
    "prepare_captioner",
    "vladv_augmenters",
]

EMBEDDED_CAPTIONER = "vladv-tiny-captioner"
WORLD_DATASET = "synthetic-aerial"  # the captioner's training data, reached through the registry
MAX_ROUNDS = 4
_FORMAT = 1
_LABEL = "augmenter 'caption'"


@dataclass(frozen=True)
class CaptionOptions:
    model: str = option(
        EMBEDDED_CAPTIONER,
        "captioner: vladv-tiny-captioner, or a Hugging Face "
        "image-to-text model (hub name in the local cache, or a folder)",
    )
    num_captions: int = option(5, "new captions per image", min=1, max=64)
    temperature: float = option(
        0.7, "sampling temperature; 0 = greedy (HF: beam search)", min=0, max=5
    )
    max_length: int = option(40, "maximum caption length in tokens", min=4, max=512)
    seed: int = option(-1, "sampling seed (-1: the run seed)", min=-1)
    batch_size: int = option(64, "images per generation batch", min=1)
    pretrain_steps: int = option(
        CaptionerConfig.steps, "embedded captioner: optimizer steps", min=1
    )
    pretrain_images: int = option(
        0, "embedded captioner: synthetic-aerial train images (0 = the dataset's default)", min=0
    )
    pretrain_data: Literal["real", "generated", "mixed"] = option(
        "real", "embedded captioner: synthetic-aerial training domain (the defended model's)"
    )


# ----------------------------------------------------------------------------------------------
# Captioners: caption(images, indices, num, round) -> list[list[str]]
# ----------------------------------------------------------------------------------------------
class Captioner:
    """Common interface; ``identity()`` enters the pool cache key."""

    def caption(
        self,
        images: torch.Tensor,
        indices: list[int],
        num: int,
        temperature: float,
        max_length: int,
        seed: int,
        round_: int,
    ) -> list[list[str]]:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError


class TinyCaptionerRunner(Captioner):
    def __init__(self, folder: Path, device: torch.device):
        self.folder = folder
        self.model, self.vocab = load_captioner(folder, device)

    def caption(self, images, indices, num, temperature, max_length, seed, round_):
        gens = [
            torch.Generator().manual_seed(image_seed(seed, i, "caption", round_)) for i in indices
        ]
        return sample_captions(self.model, self.vocab, images, num, temperature, max_length, gens)

    def identity(self) -> dict[str, Any]:
        return {"model": EMBEDDED_CAPTIONER, "weights": self.folder.name}


class HFCaptioner(Captioner):
    """A Hugging Face image-to-text model, loaded offline (``local_files_only``)."""

    def __init__(self, name: str, device: torch.device):
        import transformers
        from transformers import AutoConfig

        self.name, self.device = name, device
        try:
            config = AutoConfig.from_pretrained(name, local_files_only=True)
            if config.model_type == "blip":
                cls = transformers.BlipForConditionalGeneration
            else:
                cls = (
                    getattr(transformers, "AutoModelForVision2Seq", None)
                    or transformers.AutoModelForImageTextToText
                )
            self.model = cls.from_pretrained(name, local_files_only=True).to(device).eval()
            self.image_processor, self.tokenizer = _processors(name)
        except (OSError, ValueError, KeyError) as exc:
            raise VladvError(
                f"{_LABEL}: cannot load the Hugging Face captioner {name!r} offline "
                f"({first_line(exc)}). vladv does not download at run time: fetch it where there "
                "is network (`huggingface-cli download NAME`) or pass model=<local folder>"
            ) from None

    def caption(self, images, indices, num, temperature, max_length, seed, round_):
        pixels = self.image_processor(
            images=list(images.float().cpu()), return_tensors="pt", do_rescale=False
        )["pixel_values"]
        kwargs: dict[str, Any] = {"max_new_tokens": max_length, "num_return_sequences": num}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0)
        else:
            kwargs.update(do_sample=False, num_beams=num)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(image_seed(seed, indices[0], "hf-caption", round_))
            out = self.model.generate(
                pixel_values=pixels.to(self.device, self.model.dtype), **kwargs
            )
        texts = [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        return [texts[i * num : (i + 1) * num] for i in range(len(indices))]

    def identity(self) -> dict[str, Any]:
        return hf_identity(self.name)


def hf_identity(name: str) -> dict[str, Any]:
    """What identifies a Hugging Face captioner in the pool key (a folder: its files too)."""
    path = Path(name)
    out: dict[str, Any] = {"model": name}
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".safetensors", ".bin"))
        out["files"] = {
            p.name: (file_sha256(p) if p.suffix == ".json" else p.stat().st_size) for p in files
        }
    return out


def _processors(name: str) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        proc = AutoProcessor.from_pretrained(name, local_files_only=True)
        image_processor = getattr(proc, "image_processor", None)
        tokenizer = getattr(proc, "tokenizer", None)
        if image_processor is not None and tokenizer is not None:
            return image_processor, tokenizer
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return (
        AutoImageProcessor.from_pretrained(name, local_files_only=True),
        AutoTokenizer.from_pretrained(name, local_files_only=True),
    )


# ----------------------------------------------------------------------------------------------
# The embedded captioner: where it lives and how it is built
# ----------------------------------------------------------------------------------------------
def captioner_config(options: CaptionOptions) -> CaptionerConfig:
    return dataclasses.replace(CaptionerConfig(), steps=options.pretrain_steps)


def _world() -> Any:
    """The synthetic-aerial dataset spec (the embedded captioner's data), from the registry."""
    return vladv.get_registry().get("dataset", WORLD_DATASET)


def _train_options(options: CaptionOptions) -> Any:
    data_options = _world().options
    n = options.pretrain_images
    domain = options.pretrain_data
    return (
        data_options(train_domain=domain)
        if not n
        else data_options(train_size=n, test_size=max(8, n // 4), train_domain=domain)
    )


def captioner_path(options: CaptionOptions, ctx: Context) -> Path:
    from vladv.options import options_to_dict

    key = config_hash(
        {
            "format": _FORMAT,
            "config": dataclasses.asdict(captioner_config(options)),
            "data": options_to_dict(_train_options(options)),
            "data_version": _world().version,
        }
    )
    return ctx.cache_dir("models") / f"{EMBEDDED_CAPTIONER}-{key}"


def prepare_captioner(options: CaptionOptions, ctx: Context, force: bool = False) -> Path | None:
    """Build the embedded captioner unless cached (``vladv pretrain caption``); return its
    folder."""
    if options.model != EMBEDDED_CAPTIONER:
        return None
    path = captioner_path(options, ctx)
    return build_once(
        path,
        lambda: path if (path / "training.json").is_file() and not force else None,
        lambda: _build_captioner(options, ctx, force, path),
        dim_notice(ctx),
    )


def _build_captioner(options: CaptionOptions, ctx: Context, force: bool, path: Path) -> Path:
    console = get_console(ctx)
    console.print(
        f"building the embedded captioner '{EMBEDDED_CAPTIONER}' (first use: "
        f"{options.pretrain_steps} steps on {options.pretrain_data} synthetic-aerial "
        f"images; the time depends on the CPU's speed and load) → {path}"
    )
    data = _world().factory(_train_options(options), ctx, "train")
    captions = data.image_captions()
    model, vocab, stats = train_captioner(data.images, captions, captioner_config(options), ctx)
    tmp = scratch_dir(path)
    save_captioner(tmp, model, vocab, stats)
    publish_dir(tmp, path, lambda p: (p / "training.json").is_file(), replace=force)
    console.print(
        f"{EMBEDDED_CAPTIONER}: {stats['seconds']:.0f} s, train loss "
        f"{stats['first_loss']:.2f} → {stats['final_loss']:.2f}"
    )
    return path


def get_captioner(options: CaptionOptions, ctx: Context) -> Captioner:
    if options.model == EMBEDDED_CAPTIONER:
        return TinyCaptionerRunner(prepare_captioner(options, ctx), ctx.device)
    return HFCaptioner(options.model, ctx.device)


# ----------------------------------------------------------------------------------------------
# The augmenter
# ----------------------------------------------------------------------------------------------
class CaptionAugmenter(PoolAugmenter):
    """``num_captions`` new captions per image from a captioning model."""

    name = "caption"

    def __init__(self, options: CaptionOptions, ctx: Context):
        super().__init__(options, ctx)
        self._captioner: Captioner | None = None

    @property
    def captioner(self) -> Captioner:
        if self._captioner is None:
            self._captioner = get_captioner(self.options, self.ctx)
        return self._captioner

    def identity_extra(self) -> dict[str, Any]:
        if self.options.model == EMBEDDED_CAPTIONER:  # no need to load it: the path is the key
            return {"captioner": captioner_path(self.options, self.ctx).name}
        return {"captioner": hf_identity(self.options.model)}

    def generate(self, dataset: ImageTextDataset) -> list[list[str]]:
        o = self.options
        k = o.num_captions
        gts = dataset.image_captions()
        pools: list[list[str]] = [[] for _ in range(len(dataset))]
        todo = list(range(len(dataset)))
        cap = self.captioner
        with make_progress(self.ctx) as progress:
            task = progress.add_task("caption pools", total=len(todo))
            for round_ in range(MAX_ROUNDS):
                if round_:
                    progress.update(
                        task,
                        total=len(todo),
                        completed=0,
                        description=f"caption pools (round {round_ + 1})",
                    )
                for chunk in iter_chunks(len(todo), o.batch_size):
                    idx = todo[chunk]
                    images = torch.stack([dataset.load_image(i) for i in idx]).to(self.ctx.device)
                    with self.ctx.autocast():
                        outs = cap.caption(
                            images, idx, k, o.temperature, o.max_length, self.seed, round_
                        )
                    for i, texts in zip(idx, outs, strict=True):
                        pools[i] = dedupe_captions(pools[i] + texts, gts[i], limit=k)
                    progress.advance(task, len(idx))
                todo = [i for i in todo if len(pools[i]) < k]
                if not todo or o.temperature == 0:
                    break
        return pools


# ----------------------------------------------------------------------------------------------
# Quality of a caption pool (docs/augmenters.md)
# ----------------------------------------------------------------------------------------------
def _ngrams(words: list[str], n: int) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        out[tuple(words[i : i + n])] = out.get(tuple(words[i : i + n]), 0) + 1
    return out


def caption_quality(
    pools: list[list[str]], dataset: ImageTextDataset, backbone: Any = None, batch_size: int = 256
) -> dict[str, float]:
    """Alignment and diversity of per-image caption pools against ``dataset``'s ground truth.

    ``fill``: share of images with a non-empty pool; ``per_image``: mean pool size;
    ``distinct_global``: distinct captions / all captions over the whole dataset (low = generic
    captions); ``p1`` / ``p2``: clipped unigram / bigram precision against the image's ground truth
    (BLEU's modified precision); ``color_acc`` (datasets with ``scenes`` and ``color_words``, i.e.
    synthetic-aerial): share of captions that name the true object color and no other color;
    ``wrong`` (datasets with ``contradictions``, i.e. synthetic-aerial): share of captions that
    name an object color, count, size or tree amount the image does not show (a lower bound);
    ``ir_r1`` / ``ir_r1_gt`` (with a ``backbone``): share of captions whose own image is the
    backbone's top match among all images, for the pool and for the ground truth captions.
    """
    from vladv.kit.pools import caption_key

    texts = [(i, t) for i, pool in enumerate(pools) for t in pool]
    out: dict[str, float] = {
        "images": len(pools),
        "captions": len(texts),
        "fill": sum(bool(p) for p in pools) / max(1, len(pools)),
        "per_image": len(texts) / max(1, len(pools)),
        "distinct_global": len({caption_key(t) for _, t in texts}) / max(1, len(texts)),
    }
    for n in (1, 2):
        hit = total = 0
        for i, t in texts:
            cand = _ngrams(caption_key(t).split(), n)
            ref: dict[tuple[str, ...], int] = {}
            for r in (dataset.captions[j] for j in dataset.img2txt[i]):
                for g, c in _ngrams(caption_key(r).split(), n).items():
                    ref[g] = max(ref.get(g, 0), c)
            hit += sum(min(c, ref.get(g, 0)) for g, c in cand.items())
            total += sum(cand.values())
        out[f"p{n}"] = hit / max(1, total)
    scenes = getattr(dataset, "scenes", None)
    colors = set(getattr(dataset, "color_words", ()))
    if scenes is not None and colors and texts:

        def right(i: int, t: str) -> bool:
            words = set(caption_key(t).split())
            return scenes[i].color in words and not (words & (colors - {scenes[i].color}))

        out["color_acc"] = sum(right(i, t) for i, t in texts) / len(texts)
    contradictions = getattr(dataset, "contradictions", None)
    if contradictions is not None and texts:
        out["wrong"] = sum(contradictions(texts)) / len(texts)
    if backbone is not None and texts:
        out["ir_r1"] = _ir_r1(backbone, dataset, texts, batch_size)
        gt = [(dataset.txt2img[j], c) for j, c in enumerate(dataset.captions)]
        out["ir_r1_gt"] = _ir_r1(backbone, dataset, gt, batch_size)
    return out


@torch.no_grad()
def _ir_r1(
    backbone: Any, dataset: ImageTextDataset, texts: list[tuple[int, str]], bs: int
) -> float:
    dev = backbone.device
    feats = torch.cat(
        [
            backbone.encode_image(
                torch.stack([dataset.load_image(i) for i in range(s.start, s.stop)]).to(dev)
            )
            for s in iter_chunks(len(dataset), bs)
        ]
    )
    hits = 0
    for s in iter_chunks(len(texts), bs):
        tf = backbone.encode_text([t for _, t in texts[s]])
        top = (tf @ feats.t()).argmax(1).cpu()
        hits += int((top == torch.tensor([i for i, _ in texts[s]])).sum())
    return hits / len(texts)


def _build(options: CaptionOptions, ctx: Context) -> CaptionAugmenter:
    return CaptionAugmenter(options, ctx)


def _prepare(options: CaptionOptions, ctx: Context, force: bool = False) -> None:
    prepare_captioner(options, ctx, force=force)


@vladv.hookimpl
def vladv_augmenters():
    yield vladv.AugmenterSpec(
        name="caption",
        summary="cross-modal: new captions generated from the image (captioner)",
        options=CaptionOptions,
        factory=_build,
        modality="text",
        prepare=_prepare,
    )

"""Clean and adversarial retrieval evaluation of one backbone on one dataset split."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from vladv.backbone import Backbone
from vladv.budget import image_budget, text_budget
from vladv.console import track
from vladv.data import pair_loader
from vladv.distributed import batch_shards, gather_objects, gather_rows
from vladv.errors import PluginError
from vladv.metrics import asr_block, metrics_from_ranks, retrieval_ranks
from vladv.types import Attack, AttackOutput, Context, ImageTextDataset


@dataclass
class Gallery:
    """Embeddings of every image and caption of a split, with their ranks and metrics."""

    image_emb: torch.Tensor
    text_emb: torch.Tensor
    ranks: tuple[torch.Tensor, torch.Tensor]
    metrics: dict[str, float]
    seconds: float = 0.0


@dataclass
class AttackResult:
    gallery: Gallery
    budget: dict[str, Any]
    asr: dict[str, float | None]
    seconds: float
    examples: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # flagged in the record


def _gallery(
    dataset: ImageTextDataset, image_emb: torch.Tensor, text_emb: torch.Tensor, seconds: float
) -> Gallery:
    ranks = retrieval_ranks(image_emb, text_emb, dataset.img2txt, dataset.txt2img)
    return Gallery(image_emb, text_emb, ranks, metrics_from_ranks(*ranks), seconds)


@torch.no_grad()
def encode_clean(
    backbone: Backbone, dataset: ImageTextDataset, ctx: Context, batch_size: int
) -> Gallery:
    """Embed the whole split once (the clean gallery every attack is compared against).

    Under torch.distributed each rank embeds its share of the batches; rows are gathered.
    """
    start = time.perf_counter()
    loader = pair_loader(
        dataset, batch_size, ctx.num_workers, indices=batch_shards(len(dataset), batch_size)
    )
    img_rows, img_ids, txt_rows, txt_ids = [], [], [], []
    for batch in track(loader, "clean embeddings", ctx, total=len(loader)):
        with ctx.autocast():
            img_rows.append(backbone.encode_image(batch.images.to(ctx.device)).float().cpu())
            txt_rows.append(backbone.encode_text(batch.texts).float().cpu())
        img_ids.append(batch.image_ids)
        txt_ids.append(batch.text_ids)
    image_emb = gather_rows(_cat(img_rows), _cat(img_ids), len(dataset))
    text_emb = gather_rows(_cat(txt_rows), _cat(txt_ids), len(dataset.captions))
    return _gallery(dataset, image_emb, text_emb, time.perf_counter() - start)


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.empty(0)


def evaluate_attack(
    backbone: Backbone,
    dataset: ImageTextDataset,
    attack: Attack,
    attack_name: str,
    clean: Gallery,
    ctx: Context,
    batch_size: int,
    keep_examples: int = 0,
    crafted: Any = None,
    part: str = "both",
) -> AttackResult:
    """Attack every batch, embed the adversarial images and texts, and score them.

    With ``crafted`` (a :class:`vladv.transfer.Crafted`: examples made on another model), the
    batches are those examples and ``backbone`` (the target) only embeds them, without gradients.

    ``part`` ``image`` or ``text`` evaluates only that half of each adversarial pair, the other
    kept clean (the attack itself runs as always): which modality carries a multimodal attack.

    Rows the attack left unchanged (the texts of an image attack, the images of a text attack)
    reuse the cached clean embeddings. Under torch.distributed each rank attacks its share of
    the batches (the same batches, hence the same adversarial examples, as one process).
    """
    start = time.perf_counter()
    n_img, n_txt = len(dataset), len(dataset.captions)
    img_rows, img_ids, txt_rows, txt_ids = [], [], [], []
    budgets: dict[str, list[torch.Tensor]] = {
        "linf": [],
        "l2": [],
        "min_pixel": [],
        "max_pixel": [],
        "words": [],
    }
    examples: list[dict[str, Any]] = []
    nonfinite = 0
    was_training = backbone.training
    loader = pair_loader(
        dataset, batch_size, ctx.num_workers, indices=batch_shards(n_img, batch_size)
    )
    for batch in track(loader, f"attack {attack_name}", ctx, total=len(loader)):
        batch = dataclasses.replace(
            batch,
            image_emb=clean.image_emb[batch.image_ids],
            text_emb=clean.text_emb[batch.text_ids],
        ).to(ctx.device)
        generator = ctx.generator("attack", attack_name, int(batch.image_ids[0]))
        out = (
            attack.perturb(backbone, batch, generator) if crafted is None else crafted.output(batch)
        )
        _check_output(attack_name, batch, out, backbone.training != was_training)
        if part == "image":
            out = dataclasses.replace(out, texts=list(batch.texts))
        elif part == "text":
            out = dataclasses.replace(out, images=batch.images)
        nonfinite += int((~torch.isfinite(out.images.detach())).flatten(1).any(1).sum())
        ib = image_budget(batch.images, out.images)
        tb = text_budget(batch.texts, out.texts)
        for key in ("linf", "l2", "min_pixel", "max_pixel"):
            budgets[key].append(ib[key])
        budgets["words"].append(tb)
        with torch.no_grad(), ctx.autocast():
            if bool((ib["linf"] != 0).any()):  # NaN counts as changed
                img = backbone.encode_image(out.images.detach()).float().cpu()
            else:
                img = clean.image_emb[batch.image_ids]
            if bool((tb > 0).any()):
                txt = backbone.encode_text(out.texts).float().cpu()
            else:
                txt = clean.text_emb[batch.text_ids]
        img_rows.append(img)
        img_ids.append(batch.image_ids)
        txt_rows.append(txt)
        txt_ids.append(batch.text_ids)
        if len(examples) < keep_examples:
            examples.extend(_examples(batch, out, keep_examples - len(examples)))
    image_emb = gather_rows(_cat(img_rows), _cat(img_ids), n_img)
    text_emb = gather_rows(_cat(txt_rows), _cat(txt_ids), n_txt)
    gallery = _gallery(dataset, image_emb, text_emb, time.perf_counter() - start)
    merged = {
        k: torch.cat([torch.cat(v) if v else torch.empty(0) for v in gather_objects(vals)])
        for k, vals in budgets.items()
    }
    budget = {
        "max_linf": float(merged["linf"].max()) if merged["linf"].numel() else 0.0,
        "max_l2": float(merged["l2"].max()) if merged["l2"].numel() else 0.0,
        "max_words_changed": int(merged["words"].max()) if merged["words"].numel() else 0,
        "mean_words_changed": (
            float(merged["words"].float().mean()) if merged["words"].numel() else 0.0
        ),
        "min_pixel": float(merged["min_pixel"].min()) if merged["min_pixel"].numel() else 0.0,
        "max_pixel": float(merged["max_pixel"].max()) if merged["max_pixel"].numel() else 1.0,
    }
    asr = asr_block(clean.ranks, gallery.ranks, clean.metrics, gallery.metrics)
    nonfinite = sum(gather_objects(nonfinite))
    warnings = []
    if nonfinite:  # no score of such images means anything: stored as null, and flagged
        warnings.append(
            f"attack '{attack_name}' returned non-finite pixels (NaN or infinity) in "
            f"{nonfinite} of {n_img} images; adversarial metrics stored as null"
        )
        gallery.metrics = dict.fromkeys(gallery.metrics)
        asr = dict.fromkeys(asr)
    return AttackResult(gallery, budget, asr, time.perf_counter() - start, examples, warnings)


def _check_output(attack_name: str, batch: Any, out: Any, mode_changed: bool) -> None:
    """An attack must return an AttackOutput of the batch's shape and leave the mode alone."""
    if mode_changed:
        raise PluginError(f"attack '{attack_name}' changed the model's train/eval mode")
    if not isinstance(out, AttackOutput) or not isinstance(out.images, torch.Tensor):
        raise PluginError(
            f"attack '{attack_name}': perturb returned {type(out).__name__}, "
            f"not an AttackOutput of image tensor and texts"
        )
    if (
        out.images.shape != batch.images.shape
        or not isinstance(out.texts, list | tuple)
        or len(out.texts) != len(batch.texts)
        or not all(isinstance(t, str) for t in out.texts)
    ):
        raise PluginError(f"attack '{attack_name}' returned a batch of the wrong shape")


def _examples(batch, out, n: int) -> list[dict[str, Any]]:
    """A few clean/adversarial pairs for galleries (images as uint8 CPU tensors)."""
    rows = []
    for local in range(min(n, len(batch))):
        idx = (batch.txt2img == local).nonzero().flatten().tolist()
        rows.append(
            {
                "image_id": int(batch.image_ids[local]),
                "clean_image": (batch.images[local].detach().cpu() * 255).round().to(torch.uint8),
                "adv_image": (out.images[local].detach().cpu() * 255).round().to(torch.uint8),
                "clean_texts": [batch.texts[i] for i in idx],
                "adv_texts": [out.texts[i] for i in idx],
            }
        )
    return rows

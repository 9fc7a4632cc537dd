"""Clean and adversarial retrieval evaluation of one backbone on one dataset split."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from vladv.backbone import Backbone
from vladv.budget import image_budget, text_budget
from vladv.console import track
from vladv.data import pair_loader
from vladv.metrics import asr_block, metrics_from_ranks, retrieval_ranks
from vladv.types import Attack, Context, ImageTextDataset


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


def _gallery(dataset: ImageTextDataset, image_emb: torch.Tensor, text_emb: torch.Tensor,
             seconds: float) -> Gallery:
    ranks = retrieval_ranks(image_emb, text_emb, dataset.img2txt, dataset.txt2img)
    return Gallery(image_emb, text_emb, ranks, metrics_from_ranks(*ranks), seconds)


@torch.no_grad()
def encode_clean(backbone: Backbone, dataset: ImageTextDataset, ctx: Context,
                 batch_size: int) -> Gallery:
    """Embed the whole split once (the clean gallery every attack is compared against)."""
    start = time.perf_counter()
    loader = pair_loader(dataset, batch_size, ctx.num_workers)
    image_emb = torch.empty(len(dataset), 0)
    text_emb = torch.empty(len(dataset.captions), 0)
    for batch in track(loader, "clean embeddings", ctx, total=len(loader)):
        with ctx.autocast():
            img = backbone.encode_image(batch.images.to(ctx.device)).float().cpu()
            txt = backbone.encode_text(batch.texts).float().cpu()
        if image_emb.shape[1] == 0:
            image_emb = torch.empty(len(dataset), img.shape[1])
            text_emb = torch.empty(len(dataset.captions), txt.shape[1])
        image_emb[batch.image_ids] = img
        text_emb[batch.text_ids] = txt
    return _gallery(dataset, image_emb, text_emb, time.perf_counter() - start)


def evaluate_attack(backbone: Backbone, dataset: ImageTextDataset, attack: Attack,
                    attack_name: str, clean: Gallery, ctx: Context, batch_size: int,
                    keep_examples: int = 0) -> AttackResult:
    """Attack every batch, embed the adversarial images and texts, and score them.

    Rows the attack left unchanged (the texts of an image attack, the images of a text attack)
    reuse the cached clean embeddings.
    """
    start = time.perf_counter()
    image_emb = clean.image_emb.clone()
    text_emb = clean.text_emb.clone()
    linf, l2, words, lo, hi = [], [], [], [], []
    examples: list[dict[str, Any]] = []
    was_training = backbone.training
    loader = pair_loader(dataset, batch_size, ctx.num_workers)
    for batch in track(loader, f"attack {attack_name}", ctx, total=len(loader)):
        batch = batch.to(ctx.device)
        generator = ctx.generator("attack", attack_name, int(batch.image_ids[0]))
        out = attack.perturb(backbone, batch, generator)
        if backbone.training != was_training:
            raise RuntimeError(f"attack '{attack_name}' changed the model's train/eval mode")
        if out.images.shape != batch.images.shape or len(out.texts) != len(batch.texts):
            raise RuntimeError(f"attack '{attack_name}' returned a batch of the wrong shape")
        ib = image_budget(batch.images, out.images)
        tb = text_budget(batch.texts, out.texts)
        linf.append(ib["linf"])
        l2.append(ib["l2"])
        lo.append(ib["min_pixel"])
        hi.append(ib["max_pixel"])
        words.append(tb)
        with torch.no_grad(), ctx.autocast():
            if bool((ib["linf"] > 0).any()):
                image_emb[batch.image_ids] = backbone.encode_image(out.images.detach()).float().cpu()
            if bool((tb > 0).any()):
                text_emb[batch.text_ids] = backbone.encode_text(out.texts).float().cpu()
        if len(examples) < keep_examples:
            examples.extend(_examples(batch, out, keep_examples - len(examples)))
    gallery = _gallery(dataset, image_emb, text_emb, time.perf_counter() - start)
    budget = {
        "max_linf": float(torch.cat(linf).max()) if linf else 0.0,
        "max_l2": float(torch.cat(l2).max()) if l2 else 0.0,
        "max_words_changed": int(torch.cat(words).max()) if words else 0,
        "mean_words_changed": float(torch.cat(words).float().mean()) if words else 0.0,
        "min_pixel": float(torch.cat(lo).min()) if lo else 0.0,
        "max_pixel": float(torch.cat(hi).max()) if hi else 1.0,
    }
    asr = asr_block(clean.ranks, gallery.ranks, clean.metrics, gallery.metrics)
    return AttackResult(gallery, budget, asr, time.perf_counter() - start, examples)


def _examples(batch, out, n: int) -> list[dict[str, Any]]:
    """A few clean/adversarial pairs for galleries (images as uint8 CPU tensors)."""
    rows = []
    for local in range(min(n, len(batch))):
        idx = (batch.txt2img == local).nonzero().flatten().tolist()
        rows.append({
            "image_id": int(batch.image_ids[local]),
            "clean_image": (batch.images[local].detach().cpu() * 255).round().to(torch.uint8),
            "adv_image": (out.images[local].detach().cpu() * 255).round().to(torch.uint8),
            "clean_texts": [batch.texts[i] for i in idx],
            "adv_texts": [out.texts[i] for i in idx],
        })
    return rows

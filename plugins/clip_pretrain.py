"""The embedded tiny CLIP ``vladv-tiny-aerial``: its open_clip config, pretraining and evaluation.

Pretraining is CLIP's symmetric contrastive loss on the synthetic-aerial train split (one of the
captions of each image sampled per step), AdamW with linear warmup and cosine decay, seeded init,
shuffling and caption sampling. The weights are cached as safetensors (open_clip key names) under
``VLADV_HOME/models``, keyed by the hash of the model config, the pretraining options and the data.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from torch import nn
from vladv_plugins.synthetic import GENERATOR_VERSION, SyntheticOptions, load_synthetic

import vladv
from vladv.backbone import PixelPreprocess
from vladv.cache import config_hash
from vladv.checkpoints import save_state_dict
from vladv.metrics import retrieval_metrics
from vladv.options import options_to_dict

DEFAULT_MODEL = "vladv-tiny-aerial"
PRETRAIN_VERSION = 1
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 128, "layers": 4,
                   "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 96, "heads": 3,
                 "layers": 2, "mlp_ratio": 2.0},
}
_PRETRAIN_KEYS = ("pretrain_steps", "pretrain_batch_size", "pretrain_lr", "pretrain_warmup",
                  "pretrain_weight_decay", "pretrain_seed", "pretrain_images")
_registered: str | None = None


def register_tiny_config() -> None:
    """Register ``vladv-tiny-aerial`` with open_clip (a JSON config file, as open_clip wants)."""
    global _registered
    text = json.dumps(TINY_CONFIG, sort_keys=True)
    if _registered == text and DEFAULT_MODEL in open_clip.list_models():
        return
    with tempfile.TemporaryDirectory(prefix="vladv-openclip-") as tmp:
        path = Path(tmp) / f"{DEFAULT_MODEL}.json"
        path.write_text(text)
        open_clip.add_model_config(path)
    _registered = text


@contextlib.contextmanager
def quiet_open_clip(level: int = logging.WARNING):
    """Silence open_clip's root-logger messages up to ``level`` meanwhile (vladv reports errors)."""
    previous = logging.root.manager.disable
    logging.disable(max(previous, level))
    try:
        yield
    finally:
        logging.disable(previous)


@functools.lru_cache(maxsize=8)
def get_tokenizer(name: str) -> Any:
    """open_clip's tokenizer for ``name``, built once per process (loading the BPE takes a while)."""
    if name == DEFAULT_MODEL:
        register_tiny_config()
    return open_clip.get_tokenizer(name)


def dataset_options(options: Any) -> SyntheticOptions:
    """The synthetic-aerial options the embedded model is pretrained (and evaluated) on."""
    n = options.pretrain_images
    if not n:
        return SyntheticOptions()
    return SyntheticOptions(train_size=n, test_size=max(8, min(500, n // 4)))


def pretrain_config(options: Any) -> dict[str, Any]:
    return {"model": TINY_CONFIG, "pretrain": {k: getattr(options, k) for k in _PRETRAIN_KEYS},
            "data": options_to_dict(dataset_options(options)), "data_version": GENERATOR_VERSION,
            "version": PRETRAIN_VERSION}


def trained_path(options: Any, ctx: vladv.Context) -> Path:
    return ctx.cache_dir("models") / f"{DEFAULT_MODEL}-{config_hash(pretrain_config(options))}.safetensors"


def _say(ctx: vladv.Context, text: str) -> None:
    if ctx.console is not None:
        ctx.console.print(text)
    else:
        print(text, file=sys.stderr, flush=True)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no decay on gains, biases, embeddings and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "embedding" in name or "logit_scale" in name or name.endswith("class_embedding"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE on L2-normalized embeddings."""
    logits = logit_scale.exp().clamp(max=100.0) * img @ txt.T
    labels = torch.arange(img.shape[0], device=img.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless index batches of ``batch_size``, reshuffled every epoch (the last partial one dropped)."""
    batch_size = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def train_clip(model: nn.Module, preprocess: nn.Module, images: torch.Tensor, tokens: torch.Tensor,
               *, steps: int, batch_size: int, lr: float, warmup: int = 0, weight_decay: float = 0.05,
               seed: int = 0, device: torch.device | str = "cpu", autocast: Any = None,
               on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Contrastive training of an open_clip ``model`` in place; returns the loss of every step.

    ``images``: uint8 (N, 3, H, W); ``tokens``: (N, K, L), the K tokenized captions of each image
    (one is sampled per image and step)
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    n, k = tokens.shape[:2]
    fused = device.type in ("cpu", "cuda")  # fused AdamW: much faster over the token embedding
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6,
                            fused=fused or None)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    model.train()
    losses: list[float] = []
    stream = batches(n, batch_size, gen)
    for step in range(steps):
        idx = next(stream)
        cap = torch.randint(k, (len(idx),), generator=gen)
        x = images[idx].to(device, non_blocking=True).float().div_(255.0)
        t = tokens[idx, cap].to(device, non_blocking=True)
        with autocast if autocast is not None else torch.autocast(device.type, enabled=False):
            img = F.normalize(model.encode_image(preprocess(x)).float(), dim=-1)
            txt = F.normalize(model.encode_text(t).float(), dim=-1)
            loss = clip_loss(img, txt, model.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses


@torch.no_grad()
def evaluate_clip(backbone: Any, dataset: vladv.ImageTextDataset, batch_size: int = 250) -> dict[str, float]:
    """Clean TR/IR R@1/5/10 and RSUM of any vladv backbone on ``dataset``."""
    was_training = backbone.training
    backbone.eval()
    device = backbone.device
    img = []
    for start in range(0, len(dataset), batch_size):
        x = torch.stack([dataset.load_image(i) for i in range(start, min(start + batch_size, len(dataset)))])
        img.append(backbone.encode_image(x.to(device)).float().cpu())
    txt = [backbone.encode_text(dataset.captions[s:s + batch_size]).float().cpu()
           for s in range(0, len(dataset.captions), batch_size)]
    backbone.train(was_training)
    return retrieval_metrics(torch.cat(img), torch.cat(txt), dataset.img2txt, dataset.txt2img)


def _progress(ctx: vladv.Context):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = ctx.console or Console(stderr=True)
    return Progress(TextColumn("[bold]pretraining {task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, disable=not ctx.progress, transient=False)


def pretrain_clip(options: Any, ctx: vladv.Context | None = None, force: bool = False) -> Path:
    """Path to the embedded model's weights for ``options`` (ClipOptions); trains them if missing.

    ``force`` retrains even when the cache holds them. Deterministic for a given seed and device.
    """
    ctx = ctx or vladv.Context()
    path = trained_path(options, ctx)
    if path.is_file() and not force:
        return path
    what = "rebuilding the embedded model" if path.is_file() else "building the embedded model (first run)"
    _say(ctx, f"{what} {DEFAULT_MODEL}: contrastive pretraining on synthetic-aerial, "
              f"{options.pretrain_steps} steps -> {path}")
    t0 = time.perf_counter()
    data_opts = dataset_options(options)
    train = load_synthetic(data_opts, ctx, "train")
    register_tiny_config()
    with torch.random.fork_rng(devices=[]), quiet_open_clip():  # seeded init, global RNG untouched
        torch.manual_seed(options.pretrain_seed)
        model = open_clip.create_model(DEFAULT_MODEL, pretrained=None).to(ctx.device)
    cfg = open_clip.get_model_preprocess_cfg(model)
    preprocess = PixelPreprocess(cfg["size"] if isinstance(cfg["size"], int) else min(cfg["size"]),
                                 cfg["mean"], cfg["std"], cfg.get("interpolation", "bicubic")).to(ctx.device)
    tokenizer = get_tokenizer(DEFAULT_MODEL)
    k = min(len(c) for c in train.img2txt)
    flat = [train.captions[ids[j]] for ids in train.img2txt for j in range(k)]
    tokens = tokenizer(flat).view(len(train), k, -1)
    t_data = time.perf_counter() - t0
    with _progress(ctx) as progress:
        task = progress.add_task(DEFAULT_MODEL, total=options.pretrain_steps, loss=float("nan"))

        def on_step(step: int, loss: float) -> None:
            progress.update(task, advance=1, loss=loss)

        losses = train_clip(model, preprocess, train.images, tokens, steps=options.pretrain_steps,
                            batch_size=options.pretrain_batch_size, lr=options.pretrain_lr,
                            warmup=options.pretrain_warmup, weight_decay=options.pretrain_weight_decay,
                            seed=options.pretrain_seed, device=ctx.device, autocast=ctx.autocast(),
                            on_step=on_step)
    t_train = time.perf_counter() - t0 - t_data
    from vladv_plugins.clip import ClipBackbone

    test = load_synthetic(data_opts, ctx, "test")
    metrics = evaluate_clip(ClipBackbone(model, tokenizer).to(ctx.device), test)
    head = sum(losses[:10]) / max(1, len(losses[:10]))
    tail = sum(losses[-10:]) / max(1, len(losses[-10:]))
    meta = {"config": json.dumps(pretrain_config(options), sort_keys=True),
            "losses": json.dumps({"first10": head, "last10": tail,
                                  "every25": [round(v, 4) for v in losses[::25]]}),
            "seconds": json.dumps({"data": round(t_data, 2), "train": round(t_train, 2)}),
            "test_metrics": json.dumps({k: round(v, 2) for k, v in metrics.items()}),
            "format": "open_clip state dict"}
    save_state_dict(model.state_dict(), path, meta)
    _say(ctx, f"{DEFAULT_MODEL}: trained in {t_train:.0f}s (data {t_data:.0f}s), loss {head:.2f} -> "
              f"{tail:.2f}; clean test TR@1 {metrics['tr_r1']:.1f} IR@1 {metrics['ir_r1']:.1f} "
              f"RSUM {metrics['rsum']:.1f}")
    return path

"""The embedded captioner ``vladv-tiny-captioner``: a small image-conditioned transformer decoder.

A patchify conv encoder turns a 64×64 image into an 8×8 grid of feature tokens; a 2-layer
pre-norm transformer decoder (causal self-attention, cross-attention to the grid, key/value cache
for generation) predicts word-level tokens of a vocabulary built from the synthetic-aerial train
captions. vladv trains it with teacher forcing on the synthetic-aerial train split (one random
caption of each of 48 images per step, 1000 steps), deterministic by seed, and caches it under
``VLADV_HOME/models`` as ``model.safetensors`` + ``config.json`` (vocabulary included) +
``training.json``.

Sampling is batched over images and captions; randomness is Gumbel noise drawn from one CPU
generator *per image*, so an image's captions depend on (seed, image index, round) only, not on
the batch it was generated in or on the device.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import TextColumn
from torch import nn

from vladv.cache import atomic_write_json
from vladv.checkpoints import load_state_dict, save_state_dict
from vladv.console import make_progress
from vladv.types import Context

__all__ = [
    "CaptionerConfig",
    "TinyCaptioner",
    "WordVocab",
    "detokenize",
    "load_captioner",
    "sample_captions",
    "save_captioner",
    "train_captioner",
]

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(4)
_TOKEN = re.compile(r"[a-z]+|[0-9]+|[^\sa-z0-9]")
_NO_SPACE_BEFORE = set(".,;:!?)'")


class WordVocab:
    """Word-level vocabulary: lower-cased words, digits and punctuation marks as tokens."""

    def __init__(self, words: Sequence[str]):
        self.itos = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, corpus: Sequence[str], min_count: int = 1) -> WordVocab:
        counts: dict[str, int] = {}
        for text in corpus:
            for tok in _TOKEN.findall(text.lower()):
                counts[tok] = counts.get(tok, 0) + 1
        words = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int) -> list[int]:
        """``<bos> tokens <eos>``, truncated to ``max_len`` ids (the ``<eos>`` is kept)."""
        ids = [self.stoi.get(t, UNK) for t in _TOKEN.findall(text.lower())][: max_len - 2]
        return [BOS, *ids, EOS]

    def decode(self, ids: Sequence[int]) -> str:
        words = []
        for i in ids:
            if i == EOS:
                break
            if i > UNK:
                words.append(self.itos[i])
        return detokenize(words)


def detokenize(words: Sequence[str]) -> str:
    """Join tokens into a sentence: no space before punctuation or around '-', capitalized."""
    out = ""
    for w in words:
        if not out or w in _NO_SPACE_BEFORE or w == "-" or out.endswith("-"):
            out += w
        else:
            out += " " + w
    return out[:1].upper() + out[1:]


@dataclass(frozen=True)
class CaptionerConfig:
    """Architecture and training recipe of the embedded captioner (its cache key)."""

    image_size: int = 64
    patch: int = 4
    width: int = 128
    layers: int = 2
    heads: int = 4
    max_len: int = 40
    steps: int = 4000  # 1000 until 2026-12-01: too few for world v2 (docs/augmenters.md)
    batch_size: int = 48  # images per step
    captions_per_image: int = 1  # of its captions, sampled per step (0 = all)
    lr: float = 2e-3
    warmup: int = 60
    weight_decay: float = 0.01
    seed: int = 0


class _Block(nn.Module):
    """Pre-norm decoder block: causal self-attention (with cache), cross-attention, MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.q_x, self.kv_x, self.proj_x = (
            nn.Linear(width, width),
            nn.Linear(width, 2 * width),
            nn.Linear(width, width),
        )
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        n, t, w = x.shape
        return x.view(n, t, self.heads, w // self.heads).transpose(1, 2)

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv_x(memory).chunk(2, dim=-1)
        return self._split(k), self._split(v)

    def forward(
        self,
        x: torch.Tensor,
        mem_kv: tuple[torch.Tensor, torch.Tensor],
        cache: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        n, t, w = x.shape
        q, k, v = (self._split(z) for z in self.qkv(self.ln1(x)).chunk(3, dim=-1))
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        causal = t > 1  # a single new token may see the whole cache
        a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        x = x + self.proj(a.transpose(1, 2).reshape(n, t, w))
        q = self._split(self.q_x(self.ln2(x)))
        a = F.scaled_dot_product_attention(q, *mem_kv)
        x = x + self.proj_x(a.transpose(1, 2).reshape(n, t, w))
        return x + self.mlp(self.ln3(x))


class TinyCaptioner(nn.Module):
    """Patchify conv encoder (8×8 grid of tokens) + transformer decoder with tied embeddings."""

    def __init__(self, vocab_size: int, cfg: CaptionerConfig):
        super().__init__()
        self.cfg, w = cfg, cfg.width
        grid = cfg.image_size // cfg.patch // 2
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w // 4, cfg.patch, stride=cfg.patch),
            nn.GELU(),
            nn.Conv2d(w // 4, w // 2, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(w // 2, w, 3, padding=1),
        )
        self.img_pos = nn.Parameter(torch.randn(1, grid * grid, w) * 0.02)
        self.img_ln = nn.LayerNorm(w)
        self.tok = nn.Embedding(vocab_size, w)
        self.pos = nn.Parameter(torch.randn(1, cfg.max_len, w) * 0.02)
        self.blocks = nn.ModuleList(_Block(w, cfg.heads) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(w)
        nn.init.normal_(self.tok.weight, std=0.02)

    def encode(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-layer cross-attention keys/values of ``images`` (B, 3, H, W) in [0, 1]."""
        s = self.cfg.image_size
        if images.shape[-2:] != (s, s):
            images = F.interpolate(
                images, size=(s, s), mode="bilinear", antialias=True, align_corners=False
            )
        feats = self.encoder((images - 0.5) / 0.25).flatten(2).transpose(1, 2)
        memory = self.img_ln(feats + self.img_pos)
        return [b.memory_kv(memory) for b in self.blocks]

    def decode(
        self,
        tokens: torch.Tensor,
        mem: list[tuple[torch.Tensor, torch.Tensor]],
        caches: list[dict[str, torch.Tensor]] | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        x = self.tok(tokens) + self.pos[:, start : start + tokens.shape[1]]
        for i, block in enumerate(self.blocks):
            x = block(x, mem[i], None if caches is None else caches[i])
        return self.ln(x) @ self.tok.weight.t()

    def forward(
        self, images: torch.Tensor, tokens: torch.Tensor, image_of: torch.Tensor
    ) -> torch.Tensor:
        """Next-token logits of ``tokens`` (T, L); ``image_of`` (T,) indexes ``images``."""
        mem = [(k[image_of], v[image_of]) for k, v in self.encode(images)]
        return self.decode(tokens, mem)


# ----------------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def sample_captions(
    model: TinyCaptioner,
    vocab: WordVocab,
    images: torch.Tensor,
    num: int,
    temperature: float,
    max_len: int,
    generators: Sequence[torch.Generator],
) -> list[list[str]]:
    """``num`` captions per image (temperature sampling; ``temperature == 0``: one greedy caption).

    ``generators``: one CPU generator per image (Gumbel noise); the model's device does the rest.
    """
    model.eval()
    dev = next(model.parameters()).device
    num = 1 if temperature == 0 else num
    b, v = images.shape[0], len(vocab)
    mem = [
        (k.repeat_interleave(num, 0), vv.repeat_interleave(num, 0))
        for k, vv in model.encode(images.to(dev).float())
    ]
    n = b * num
    caches: list[dict[str, torch.Tensor]] = [{} for _ in model.blocks]
    token = torch.full((n, 1), BOS, dtype=torch.long, device=dev)
    out = torch.full((n, 0), PAD, dtype=torch.long, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    steps = min(max_len, model.cfg.max_len) - 1
    for t in range(steps):
        logits = model.decode(token, mem, caches, start=t)[:, -1].float()
        logits[:, PAD] = logits[:, BOS] = logits[:, UNK] = -math.inf
        if temperature > 0:
            u = torch.stack([torch.rand(num, v, generator=g) for g in generators]).view(n, v)
            gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-7)))
            logits = logits / temperature + gumbel.to(dev)
        token = logits.argmax(-1, keepdim=True)
        token[done] = PAD
        out = torch.cat([out, token], 1)
        done |= token.squeeze(1) == EOS
        if bool(done.all()):
            break
    rows = out.cpu().tolist()
    texts = [vocab.decode(r) for r in rows]
    return [texts[i * num : (i + 1) * num] for i in range(b)]


# ----------------------------------------------------------------------------------------------
# Training and storage
# ----------------------------------------------------------------------------------------------
def _lr_factor(step: int, cfg: CaptionerConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    rest = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, rest)))


def _pick(n: int, k: int, g: torch.Generator) -> list[int]:
    return list(range(n)) if k <= 0 or k >= n else torch.randperm(n, generator=g)[:k].tolist()


def train_captioner(
    images: torch.Tensor,
    captions: Sequence[Sequence[str]],
    cfg: CaptionerConfig,
    ctx: Context,
    on_step: Callable[[int, TinyCaptioner, WordVocab], None] | None = None,
) -> tuple[TinyCaptioner, WordVocab, dict[str, Any]]:
    """Train on ``images`` (N, 3, H, W; uint8 or [0, 1]) with their captions (teacher forcing).

    ``on_step(step, model, vocab)`` runs after every optimizer step (e.g. to evaluate).
    """
    start = time.perf_counter()
    vocab = WordVocab.build([c for caps in captions for c in caps])
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = TinyCaptioner(len(vocab), cfg)
    model.to(ctx.device).train()
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "pos" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "pos" not in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": other, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg))
    encoded = [[vocab.encode(c, cfg.max_len) for c in caps] for caps in captions]
    losses: list[float] = []
    perm: list[int] = []
    with make_progress(ctx, TextColumn("loss {task.fields[loss]:.3f}")) as progress:
        task = progress.add_task("train vladv-tiny-captioner", total=cfg.steps, loss=float("nan"))
        for step in range(cfg.steps):
            if len(perm) < cfg.batch_size:
                perm += torch.randperm(len(encoded), generator=g).tolist()
            idx, perm = perm[: cfg.batch_size], perm[cfg.batch_size :]
            seqs = [
                (j, encoded[i][c])
                for j, i in enumerate(idx)
                for c in _pick(len(encoded[i]), cfg.captions_per_image, g)
            ]
            length = max(len(s) for _, s in seqs)
            tokens = torch.full((len(seqs), length), PAD, dtype=torch.long)
            for r, (_, s) in enumerate(seqs):
                tokens[r, : len(s)] = torch.tensor(s)
            image_of = torch.tensor([j for j, _ in seqs], device=ctx.device)
            batch = images[idx].to(ctx.device)
            batch = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
            tokens = tokens.to(ctx.device)
            with ctx.autocast():
                logits = model(batch, tokens[:, :-1], image_of)
            loss = F.cross_entropy(
                logits.float().reshape(-1, len(vocab)), tokens[:, 1:].reshape(-1), ignore_index=PAD
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            progress.update(task, advance=1, loss=sum(losses[-20:]) / len(losses[-20:]))
            if on_step is not None:
                on_step(step, model, vocab)
                model.train()
    model.eval()
    stats = {
        "config": dataclasses.asdict(cfg),
        "vocab_size": len(vocab),
        "train_images": len(encoded),
        "first_loss": sum(losses[:20]) / max(1, len(losses[:20])),
        "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
        "seconds": time.perf_counter() - start,
        "device": str(ctx.device),
        "losses": [round(x, 4) for x in losses[:: max(1, len(losses) // 200)]],
    }
    return model, vocab, stats


def save_captioner(
    folder: Path, model: TinyCaptioner, vocab: WordVocab, stats: dict[str, Any]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_state_dict(
        model.state_dict(), folder / "model.safetensors", {"format": "vladv-tiny-captioner"}
    )
    atomic_write_json(
        folder / "config.json", {"config": dataclasses.asdict(model.cfg), "vocab": vocab.itos}
    )
    atomic_write_json(folder / "training.json", stats)


def load_captioner(folder: Path, device: torch.device) -> tuple[TinyCaptioner, WordVocab]:
    meta = json.loads((folder / "config.json").read_text())
    cfg = CaptionerConfig(**meta["config"])
    vocab = WordVocab(meta["vocab"][len(SPECIALS) :])
    model = TinyCaptioner(len(vocab), cfg)
    model.load_state_dict(load_state_dict(folder / "model.safetensors"))
    return model.to(device).eval(), vocab

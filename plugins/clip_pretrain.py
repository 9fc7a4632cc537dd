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
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

import vladv
from vladv.backbone import PixelPreprocess
from vladv.cache import atomic_write_text, build_once, config_hash, file_sha256
from vladv.checkpoints import save_state_dict
from vladv.errors import OptionError, StorageError
from vladv.kit.hub import quiet_transformers
from vladv.metrics import retrieval_metrics
from vladv.options import options_to_dict
from vladv_plugins.clip_backbone import ClipBackbone, encode_text

DEFAULT_MODEL = "vladv-tiny-aerial"
WORLD_DATASET = "synthetic-aerial"  # reached through the registry (world_dataset)
PRETRAIN_VERSION = 2
TINY_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {
        "image_size": 64,
        "patch_size": 16,
        "width": 128,
        "layers": 4,
        "head_width": 32,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {
        "context_length": 64,
        "vocab_size": 0,
        "width": 96,
        "heads": 3,
        "layers": 2,
        "mlp_ratio": 2.0,
    },  # vocab_size: see tiny_config()
}
_PRETRAIN_KEYS = (
    "pretrain_steps",
    "pretrain_batch_size",
    "pretrain_lr",
    "pretrain_warmup",
    "pretrain_weight_decay",
    "pretrain_seed",
    "pretrain_images",
    "pretrain_data",
    "pretrain_graded",
    "pretrain_text_noise",
    "pretrain_image_noise",
)
# pretrain_text_init is part of the model identity (its config hash), not of the recipe
_registered: dict[str, str] = {}
ALIGN_MODEL = "vladv-tiny-align"
ALIGN_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 32},
    "text_cfg": {
        "context_length": 32,
        "hf_proj_type": "linear",
        "hf_pooler_type": "cls_pooler",
        "hf_model_pretrained": True,
    },
}
EMBEDDED_MODELS = (DEFAULT_MODEL, ALIGN_MODEL)
DEFAULT_STEPS = {DEFAULT_MODEL: 1350, ALIGN_MODEL: 1000}
"""Pretraining steps of each embedded model when ``pretrain_steps`` is 0: what fits the
five-minute budget on a 2-core CPU (ALIGN's step costs more than CLIP's; docs/world.md)."""


def pretrain_steps(options: Any) -> int:
    """The optimizer steps ``options`` ask for, the model's default resolved."""
    return options.pretrain_steps or DEFAULT_STEPS[options.model]


_SPECIAL = 4  # pad, unk, start, end


def world_dataset() -> vladv.DatasetSpec:
    """The synthetic-aerial dataset the embedded models learn, from the plugin registry (its
    options class, loader, captions reader and generator version)."""
    return vladv.get_registry().get("dataset", WORLD_DATASET)


def caption_vocabulary(captions: Iterable[str]) -> tuple[int, ...]:
    """The sorted BPE ids (of open_clip's 49,408) that ``captions`` use: a compact vocabulary
    for :class:`CompactTokenizer`."""
    from open_clip.tokenizer import SimpleTokenizer

    words: set[str] = set()
    for c in captions:
        words.update(c.lower().replace(".", " . ").replace(",", " , ").split())
    return tuple(sorted(set(SimpleTokenizer().encode(" ".join(sorted(words))))))


@functools.lru_cache(maxsize=1)
def world_vocabulary() -> tuple[int, ...]:
    """The BPE ids (of open_clip's 49,408) that synthetic-aerial's captions use, both domains.

    The embedded model embeds only these (about 400) plus pad, unknown, start and end: the full
    BPE table would be 6.3 M of its parameters and most of its training time, for words the
    world never shows. Unknown words map to one ``unk`` embedding (docs/world.md).
    """
    from vladv.cache import vladv_home

    world = world_dataset()
    path = vladv_home() / "models" / f"{DEFAULT_MODEL}-vocabulary-v{world.version}.json"
    with contextlib.suppress(OSError, ValueError, TypeError):
        return tuple(int(i) for i in json.loads(path.read_text()))
    ids = caption_vocabulary(
        c
        for domain in ("real", "generated")
        for caps in world.captions(world.options(train_domain=domain), "train")
        for c in caps
    )
    with contextlib.suppress(OSError, StorageError):  # a cache: computing it again is fine
        atomic_write_text(path, json.dumps(ids))
    return ids


class CompactTokenizer:
    """open_clip's BPE tokenizer with ids remapped to the world's vocabulary.

    Ids: 0 pad, 1 unknown, 2.. the world's BPE tokens in BPE order, then start, then end (the
    largest id, as open_clip's argmax pooling expects).
    """

    def __init__(self, vocabulary: Sequence[int], context_length: int = 32):
        from open_clip.tokenizer import SimpleTokenizer

        self.base = SimpleTokenizer(context_length=context_length)
        self.context_length = context_length
        n = len(vocabulary)
        table = torch.ones(len(self.base.encoder), dtype=torch.long)
        table[0] = 0
        table[torch.tensor(list(vocabulary), dtype=torch.long)] = torch.arange(2, n + 2)
        table[self.base.sot_token_id] = n + 2
        table[self.base.eot_token_id] = n + 3
        self.table = table
        self.vocab_size = n + _SPECIAL
        self._ids = table.tolist()
        self._words: dict[str, list[int] | None] = {}

    def __call__(
        self, texts: str | Sequence[str], context_length: int | None = None
    ) -> torch.Tensor:
        """``table[base(texts, context_length)]``, with a per-word fast path (same ids).

        open_clip cleans a text (ftfy, HTML unescaping, whitespace, lower case) and BPE-encodes
        the pieces of a regex that never spans whitespace. For printable ASCII without ``&``
        every cleaning step but whitespace and case is the identity, so a text's ids are the
        concatenation of its lower-cased words' ids, each word encoded once and cached; other
        texts take open_clip's path.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        length = context_length or self.context_length
        sot, eot = self._ids[self.base.sot_token_id], self._ids[self.base.eot_token_id]
        flat: list[int] = []
        slow: list[int] = []
        for row, text in enumerate(texts):
            ids = self._fast(text)
            if ids is None:
                slow.append(row)
                flat += [0] * length
                continue
            ids = [sot, *ids, eot]
            if len(ids) > length:
                ids = ids[:length]
                ids[-1] = eot
            flat += ids
            flat += [0] * (length - len(ids))
        result = torch.tensor(flat, dtype=torch.long).view(len(texts), length)
        if slow:
            result[slow] = self.table[self.base([texts[i] for i in slow], length)]
        return result

    def _fast(self, text: str) -> list[int] | None:
        """Compact ids of ``text``'s BPE pieces (no start/end), or None if it needs open_clip's
        full cleaning."""
        if not (text.isascii() and text.isprintable()) or "&" in text:
            return None
        out: list[int] = []
        for word in text.lower().split():
            ids = self._words.get(word)
            if ids is None:
                if word in self._words or len(self._words) >= 1_000_000:
                    return None
                import ftfy

                ids = (
                    [self._ids[i] for i in self.base.encode(word)]
                    if ftfy.fix_text(word) == word
                    else None
                )
                self._words[word] = ids
                if ids is None:
                    return None
            out += ids
        return out


def tiny_config() -> dict[str, Any]:
    """The embedded model's open_clip config, its vocabulary sized to the world."""
    cfg = json.loads(json.dumps(TINY_CONFIG))
    cfg["text_cfg"]["vocab_size"] = len(world_vocabulary()) + _SPECIAL
    return cfg


def register_tiny_config() -> None:
    """Register ``vladv-tiny-aerial`` with open_clip (a JSON config file, as open_clip wants)."""
    _register(DEFAULT_MODEL, tiny_config())


def _register(name: str, config: dict[str, Any]) -> None:
    text = json.dumps(config, sort_keys=True)
    if _registered.get(name) == text and name in open_clip.list_models():
        return
    with tempfile.TemporaryDirectory(prefix="vladv-openclip-") as tmp:
        path = Path(tmp) / f"{name}.json"
        path.write_text(text)
        open_clip.add_model_config(path)
    _registered[name] = text


def align_config(ctx: vladv.Context, text_init: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """(open_clip config, its machine-independent identity) of ``vladv-tiny-align``.

    The text tower is a BERT that starts from a masked LM's weights, as ALIGN's starts from
    BERT: ``text_init`` (a local Hugging Face folder) or the embedded ``vladv-tiny-mlm`` (built
    first if missing); the image tower is a small ResNet (convolutional, attention-pooled).
    """
    if text_init:
        mlm = Path(text_init).expanduser().resolve()
        if not (mlm / "config.json").is_file():
            raise OptionError(
                f"backbone 'clip': text_init {text_init!r} is not a Hugging Face "
                f"model folder (no config.json)"
            )
        init = file_sha256(mlm / "config.json")
    else:
        from vladv.kit.mlm import prepare_mlm

        mlm = prepare_mlm(ctx)
        init = mlm.name
    cfg = json.loads(json.dumps(ALIGN_CONFIG))
    identity = json.loads(json.dumps(ALIGN_CONFIG))
    cfg["text_cfg"].update(hf_model_name=str(mlm), hf_tokenizer_name=str(mlm))
    identity["text_cfg"]["init"] = init
    return cfg, identity


def register_embedded(
    name: str, ctx: vladv.Context | None = None, text_init: str = ""
) -> dict[str, Any]:
    """Register embedded model ``name`` with open_clip; return its config identity (for hashing)."""
    if name == DEFAULT_MODEL:
        register_tiny_config()
        return tiny_config()
    cfg, identity = align_config(ctx or vladv.Context(), text_init)
    _register(name, cfg)
    return identity


@contextlib.contextmanager
def quiet_open_clip(level: int = logging.WARNING):
    """Silence open_clip's root-logger messages up to ``level`` meanwhile (vladv reports errors)."""
    previous = logging.root.manager.disable
    logging.disable(max(previous, level))
    try:
        yield
    finally:
        logging.disable(previous)


def get_tokenizer(name: str) -> Any:
    """open_clip's tokenizer for ``name``, built once per process and registered config."""
    return _tokenizer(name, _registered.get(name, ""))


@functools.lru_cache(maxsize=8)
def _tokenizer(name: str, config: str) -> Any:
    if name == DEFAULT_MODEL:
        return CompactTokenizer(world_vocabulary(), TINY_CONFIG["text_cfg"]["context_length"])
    with quiet_transformers():
        return open_clip.get_tokenizer(name)


def dataset_options(options: Any) -> Any:
    """The synthetic-aerial options the embedded model is pretrained (and evaluated) on."""
    n = options.pretrain_images
    domain = getattr(options, "pretrain_data", "real")
    data_options = world_dataset().options
    if not n:
        return data_options(train_domain=domain)
    return data_options(train_size=n, test_size=max(8, min(500, n // 4)), train_domain=domain)


def pretrain_config(options: Any, ctx: vladv.Context | None = None) -> dict[str, Any]:
    return {
        "model": register_embedded(options.model, ctx, options.pretrain_text_init),
        "pretrain": {k: getattr(options, k) for k in _PRETRAIN_KEYS}
        | {"pretrain_steps": pretrain_steps(options)},
        "data": {
            k: v
            for k, v in options_to_dict(dataset_options(options)).items()
            if not k.startswith("test_")
        },  # what the weights depend on "data_version": GENERATOR_VERSION,
        "version": PRETRAIN_VERSION,
    }


def trained_path(options: Any, ctx: vladv.Context) -> Path:
    key = config_hash(pretrain_config(options, ctx))
    return ctx.cache_dir("models") / f"{options.model}-{key}.safetensors"


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
        if (
            p.ndim < 2
            or "embedding" in name
            or "logit_scale" in name
            or name.endswith("class_embedding")
        ):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def clip_loss(
    img: torch.Tensor,
    txt: torch.Tensor,
    logit_scale: torch.Tensor,
    distance: torch.Tensor | None = None,
    graded: float = 0.0,
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE on L2-normalized embeddings.

    With ``graded`` = β > 0 and ``distance`` (B, B), the attribute distance between image i and
    the caption of pair j, the targets are soft: image i's target over the batch's captions is
    ``softmax_j(−β·distance[i, j])`` and caption j's over the images ``softmax_i(−β·distance[i,
    j])`` (one-hot when every other pair is far). docs/world.md#embedded-models says why.
    """
    logits = logit_scale.exp().clamp(max=100.0) * img @ txt.T
    if graded > 0 and distance is not None:
        target = (-graded * distance.to(logits.device, logits.dtype)).softmax(1)
        target_t = (-graded * distance.T.to(logits.device, logits.dtype)).softmax(1)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target_t))
    labels = torch.arange(img.shape[0], device=img.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless index batches of ``batch_size``, reshuffled every epoch (the last partial one
    dropped)."""
    batch_size = min(batch_size, n)
    while True:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def train_clip(
    model: nn.Module,
    preprocess: nn.Module,
    images: torch.Tensor,
    tokens: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    warmup: int = 0,
    weight_decay: float = 0.05,
    seed: int = 0,
    device: torch.device | str = "cpu",
    autocast: Any = None,
    text_noise: float = 0.0,
    image_noise: float = 0.0,
    graded: float = 0.0,
    attributes: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Contrastive training of an open_clip ``model`` in place; returns the loss of every step.

    ``images``: uint8 (N, 3, H, W); ``tokens``: (N, K, L), the K tokenized captions of each image
    (one is sampled per image and step). ``text_noise``: the share of caption tokens replaced by
    a random token of the training captions (the start and end tokens and padding are kept);
    ``image_noise``: the largest std of Gaussian pixel noise (each image draws its std uniformly
    below it). Both are drawn from the training generator, so training stays deterministic.
    ``graded`` (β) with ``attributes`` = (image codes (N, A), caption codes (N, A), or (N, K, A)
    one row per caption) of integer attribute records: soft targets graded by attribute distance
    (:func:`clip_loss`); a negative caption code is an attribute the caption does not state, which
    never counts.
    """
    if graded > 0 and attributes is None:
        raise ValueError("graded targets need the attribute records of the training pairs")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    n, k = tokens.shape[:2]
    fused = device.type in ("cpu", "cuda")  # fused AdamW: much faster over the token embedding
    opt = torch.optim.AdamW(
        param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6, fused=fused or None
    )

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    content = _content_mask(tokens)
    pool = torch.unique(tokens[content]) if text_noise > 0 else None
    # a convolutional image tower (ALIGN's ResNet) trains faster in channels-last memory on
    # CPUs; the weights are returned in the standard layout
    channels_last = not hasattr(model.visual, "transformer")
    if channels_last:
        model.visual.to(memory_format=torch.channels_last)
    model.train()
    losses: list[float] = []
    stream = batches(n, batch_size, gen)
    for step in range(steps):
        idx = next(stream)
        cap = torch.randint(k, (len(idx),), generator=gen)
        x = images[idx].float().div_(255.0)
        t = tokens[idx, cap]
        if pool is not None:
            swap = content[idx, cap] & (torch.rand(t.shape, generator=gen) < text_noise)
            t = torch.where(swap, pool[torch.randint(len(pool), t.shape, generator=gen)], t)
        if image_noise > 0:
            std = torch.rand(len(idx), 1, 1, 1, generator=gen) * image_noise
            x = (x + std * torch.randn(x.shape, generator=gen)).clamp_(0.0, 1.0)
        x = x.to(device, non_blocking=True)
        t = t.to(device, non_blocking=True)
        with autocast if autocast is not None else torch.autocast(device.type, enabled=False):
            pixels = preprocess(x)
            if channels_last:
                pixels = pixels.contiguous(memory_format=torch.channels_last)
            img = F.normalize(model.encode_image(pixels).float(), dim=-1)
            txt = F.normalize(encode_text(model, t).float(), dim=-1)
            distance = None
            if graded > 0 and attributes is not None:
                a, b = attributes[0][idx], attributes[1][idx]
                if b.ndim == 3:  # per caption: the sampled caption's codes
                    b = b[torch.arange(len(idx)), cap]
                distance = ((a[:, None, :] != b[None, :, :]) & (b[None, :, :] >= 0)).sum(-1)
            loss = clip_loss(img, txt, model.logit_scale, distance, graded)
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
    if channels_last:
        model.visual.to(memory_format=torch.contiguous_format)
    model.eval()
    return losses


def recipe(options: Any) -> dict[str, Any]:
    """:func:`train_clip`'s keyword arguments for the pretraining recipe of ``options``
    (``ClipOptions``): batch size, learning rate, warmup, weight decay, seed and noise."""
    return {
        "batch_size": options.pretrain_batch_size,
        "lr": options.pretrain_lr,
        "warmup": options.pretrain_warmup,
        "weight_decay": options.pretrain_weight_decay,
        "seed": options.pretrain_seed,
        "text_noise": options.pretrain_text_noise,
        "image_noise": options.pretrain_image_noise,
    }


def model_preprocess(model: nn.Module) -> PixelPreprocess:
    """The differentiable pixel preprocessing of an open_clip ``model`` (its size, mean, std)."""
    cfg = open_clip.get_model_preprocess_cfg(model)
    return PixelPreprocess(
        cfg["size"] if isinstance(cfg["size"], int) else min(cfg["size"]),
        cfg["mean"],
        cfg["std"],
        cfg.get("interpolation", "bicubic"),
    )


def caption_tokens(train: Any, tokenizer: Any) -> torch.Tensor:
    """(N, K, L) tokens of the first K captions of every image (K: the fewest any image has)."""
    k = min(len(c) for c in train.img2txt)
    flat = [train.captions[ids[j]] for ids in train.img2txt for j in range(k)]
    return tokenizer(flat).view(len(train), k, -1)


def training_attributes(train: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(image, caption) attribute codes of a training split with attribute records (the
    synthetic-aerial dataset's ``pair_attributes``): what each image shows and what its captions
    state (they differ for the generated domain's mismatched pairs)."""
    pairs = getattr(train, "pair_attributes", None)
    if pairs is None:
        raise OptionError(
            "backbone 'clip': graded pretraining targets need a training set with attribute "
            "records (synthetic-aerial); set pretrain_graded=0"
        )
    return pairs()


def _content_mask(tokens: torch.Tensor) -> torch.Tensor:
    """True at the word tokens of (..., L) token rows: not padding, not the first (start/CLS)
    and not the last non-padding token (end/SEP)."""
    nonpad = tokens != 0
    pos = torch.arange(tokens.shape[-1])
    last = (nonpad * pos).amax(-1, keepdim=True)
    return nonpad & (pos > 0) & (pos < last)


@torch.no_grad()
def evaluate_clip(
    backbone: Any, dataset: vladv.ImageTextDataset, batch_size: int = 250
) -> dict[str, float]:
    """Clean TR/IR R@1/5/10 and RSUM of any vladv backbone on ``dataset``."""
    was_training = backbone.training
    backbone.eval()
    device = backbone.device
    img = []
    for start in range(0, len(dataset), batch_size):
        x = torch.stack(
            [dataset.load_image(i) for i in range(start, min(start + batch_size, len(dataset)))]
        )
        img.append(backbone.encode_image(x.to(device)).float().cpu())
    txt = [
        backbone.encode_text(dataset.captions[s : s + batch_size]).float().cpu()
        for s in range(0, len(dataset.captions), batch_size)
    ]
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
    return Progress(
        TextColumn("[bold]pretraining {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not ctx.progress,
        transient=False,
    )


def pretrain_clip(options: Any, ctx: vladv.Context | None = None, force: bool = False) -> Path:
    """Path to the embedded model's weights for ``options`` (ClipOptions); trains them if missing.

    ``force`` retrains even when the cache holds them. Deterministic for a given seed and device.
    """
    ctx = ctx or vladv.Context()
    path = trained_path(options, ctx)
    return build_once(
        path,
        lambda: path if path.is_file() and not force else None,
        lambda: _pretrain(options, ctx, path),
        lambda msg: _say(ctx, msg),
        prebuilt=not force,
    )


def _pretrain(options: Any, ctx: vladv.Context, path: Path) -> Path:
    what = (
        "rebuilding the embedded model"
        if path.is_file()
        else "building the embedded model (first run)"
    )
    name = options.model
    _say(
        ctx,
        f"{what} {name}: contrastive pretraining on synthetic-aerial "
        f"({options.pretrain_data} training images), {pretrain_steps(options)} steps -> {path}",
    )
    t0 = time.perf_counter()
    data_opts = dataset_options(options)
    world = world_dataset()
    train = world.factory(data_opts, ctx, "train")
    register_embedded(name, ctx, options.pretrain_text_init)
    with torch.random.fork_rng(devices=[]), quiet_open_clip(), quiet_transformers():
        torch.manual_seed(options.pretrain_seed)  # seeded init, global RNG untouched
        model = open_clip.create_model(name, pretrained=None).to(ctx.device)
    preprocess = model_preprocess(model).to(ctx.device)
    tokenizer = get_tokenizer(name)
    tokens = caption_tokens(train, tokenizer)
    t_data = time.perf_counter() - t0
    with _progress(ctx) as progress:
        task = progress.add_task(name, total=pretrain_steps(options), loss=float("nan"))

        def on_step(step: int, loss: float) -> None:
            progress.update(task, advance=1, loss=loss)

        losses = train_clip(
            model,
            preprocess,
            train.images,
            tokens,
            steps=pretrain_steps(options),
            **recipe(options),
            device=ctx.device,
            autocast=ctx.autocast(),
            graded=options.pretrain_graded,
            attributes=training_attributes(train) if options.pretrain_graded > 0 else None,
            on_step=on_step,
        )
    t_train = time.perf_counter() - t0 - t_data
    test = world.factory(data_opts, ctx, "test")
    metrics = evaluate_clip(ClipBackbone(model, tokenizer).to(ctx.device), test)
    head = sum(losses[:10]) / max(1, len(losses[:10]))
    tail = sum(losses[-10:]) / max(1, len(losses[-10:]))
    meta = {
        "config": json.dumps(pretrain_config(options), sort_keys=True),
        "losses": json.dumps(
            {"first10": head, "last10": tail, "every25": [round(v, 4) for v in losses[::25]]}
        ),
        "seconds": json.dumps({"data": round(t_data, 2), "train": round(t_train, 2)}),
        "test_metrics": json.dumps({k: round(v, 2) for k, v in metrics.items()}),
        "format": "open_clip state dict",
    }
    save_state_dict(model.state_dict(), path, meta)
    _say(
        ctx,
        f"{name}: trained in {t_train:.0f}s (data {t_data:.0f}s), loss {head:.2f} -> "
        f"{tail:.2f}; clean test TR@1 {metrics['tr_r1']:.1f} IR@1 {metrics['ir_r1']:.1f} "
        f"RSUM {metrics['rsum']:.1f}",
    )
    return path

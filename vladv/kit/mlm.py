"""Masked language models: the interface word-substitution attacks draw candidates from.

:func:`get_mlm` loads any Hugging Face masked LM (a hub name or a local folder) or the embedded
``vladv-tiny-mlm``: a small BERT that vladv trains, on first use, on the captions of the
synthetic-aerial train split with its own WordPiece tokenizer, and caches under
``VLADV_HOME/models`` (safetensors). The captions come through the plugin registry (the dataset
plugin ``synthetic-aerial`` and its :attr:`~vladv.types.DatasetSpec.captions`), never by importing
a plugin's module.

:class:`MaskedLM` wraps tokenizer and model with a batched :meth:`MaskedLM.topk` over *unmasked*
sentences (one forward per length bucket for all texts) and a cache of clean results, so attacking
the same clean captions twice (SGA) runs the MLM once. A text's result does not depend on the
other texts of its forward nor on which call computed it first: each text runs padded to its own
length bucket (see :data:`LENGTH_BUCKET`), so a cached result is bit-identical to a recomputation
and attacks and trainings do not depend on the process's history. Guide: docs/kit.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vladv.cache import atomic_write_json, build_once, config_hash, publish_dir, scratch_dir
from vladv.console import dim_notice, get_console, make_progress
from vladv.errors import VladvError, first_line
from vladv.kit.hub import hub_offline, quiet_transformers
from vladv.types import Context

__all__ = [
    "COMMITTED_TOKENIZER",
    "CORPUS_DATASET",
    "EMBEDDED_MLM",
    "LENGTH_BUCKET",
    "MLMTopK",
    "MaskedLM",
    "TinyMLMConfig",
    "build_tokenizer",
    "committed_tokenizer",
    "embedded_corpus",
    "ensure_mlm",
    "get_mlm",
    "mask_tokens",
    "masked_accuracy",
    "mlm_path",
    "prepare_mlm",
    "save_random_mlm",
    "train_tiny_mlm",
    "write_committed_tokenizer",
]

EMBEDDED_MLM = "vladv-tiny-mlm"
"""Name of the embedded masked LM (built on first use; accepted wherever an MLM name is)."""
CORPUS_DATASET = "synthetic-aerial"
"""The dataset plugin whose train captions the embedded MLM learns (reached via the registry)."""
_FORMAT_VERSION = 2  # 2: dropout seeded (bit-reproducible weights)
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_ALPHABET = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-/&%+=*#")
_LOADED: dict[tuple[str, str], MaskedLM] = {}
# Texts run padded to their sub-token count rounded up to a multiple of this. Padding changes the
# float reductions (logits move by ~1e-5), so padding every text to the longest of its batch would
# make its result depend on the batch it happened to be computed in first (cached results then
# depend on the process's history); a length that is a function of the text alone does not.
LENGTH_BUCKET = 16
"""Texts run padded to their sub-token count rounded up to a multiple of this (see above)."""
COMMITTED_TOKENIZER = Path(__file__).resolve().parent / "data" / "vladv-tiny-mlm-tokenizer.json"
"""The embedded MLM's WordPiece vocabulary, trained once and committed: tokenizers' WordPiece
trainer breaks ties in hash-map order, random per process, so two fresh trainings on the same
captions gave different vocabularies (and different masked LMs, attack candidates and records).
Used when its recorded corpus and recipe are the embedded MLM's; other corpora train their own."""


# == The wrapper ===========================================================================
@dataclass(frozen=True)
class MLMTopK:
    """The MLM's view of one unmasked sentence (CPU tensors; row p = sub-token position p).

    ``input_ids`` (L,) with [CLS] at 0 and [SEP] last; ``offsets``: (start, end) characters of each
    token in the text ((0, 0) for special tokens); ``ids`` / ``logits`` (L, k): the top-k tokens per
    position; ``logsumexp`` (L,): log-normalizer of each row (log p = logit − logsumexp).
    """

    input_ids: torch.Tensor
    offsets: tuple[tuple[int, int], ...]
    ids: torch.Tensor
    logits: torch.Tensor
    logsumexp: torch.Tensor


class MaskedLM:
    """A masked LM (eval mode, on one device) with batched, cached top-k predictions."""

    def __init__(
        self,
        tokenizer: Any,
        model: torch.nn.Module,
        name: str = "mlm",
        cache_size: int = 32_768,
        batch_size: int = 512,
    ):
        self.tokenizer = tokenizer
        self.model = model.eval()
        self.name = name
        self.cache_size = cache_size
        self.batch_size = batch_size
        self.forwards = 0  # MLM forward passes run (for tests and benchmarks)
        self._cache: OrderedDict[tuple[str, int, int], MLMTopK] = OrderedDict()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def unk_token(self) -> str:
        return self.tokenizer.unk_token or "[UNK]"

    def topk(self, texts: list[str], k: int, max_length: int = 512) -> list[MLMTopK]:
        """Top-``k`` token ids and logits per sub-token position of each *unmasked* text.

        Texts not seen before (with the same ``k`` and ``max_length``) run in one forward per
        length bucket (chunks of ``batch_size`` for very long lists); seen ones come from the
        cache. Each text is padded to its own bucket (:data:`LENGTH_BUCKET`), so its result is
        the same whichever texts share its forward and whichever call computed it first.
        """
        keys = [(t, int(k), int(max_length)) for t in texts]
        todo = list(dict.fromkeys(key[0] for key in keys if key not in self._cache))
        for length, group in self._length_buckets(todo, max_length):
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                for text, res in zip(chunk, self._forward(chunk, k, length), strict=True):
                    self._cache[(text, int(k), int(max_length))] = res
        for key in keys:
            self._cache.move_to_end(key)  # least recently used results leave first
        out = [self._cache[key] for key in keys]  # before eviction: a call may exceed cache_size
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def _length_buckets(self, texts: list[str], max_length: int) -> list[tuple[int, list[str]]]:
        """``texts`` grouped by padded length (sub-tokens after truncation, rounded up to a
        multiple of :data:`LENGTH_BUCKET`, at most ``max_length``), shortest bucket first."""
        if not texts:
            return []
        ids = self.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        groups: dict[int, list[str]] = {}
        for text, row in zip(texts, ids, strict=True):
            bucket = min(max_length, -(-len(row) // LENGTH_BUCKET) * LENGTH_BUCKET)
            groups.setdefault(bucket, []).append(text)
        return sorted(groups.items())

    @torch.no_grad()
    def _forward(self, texts: list[str], k: int, length: int) -> list[MLMTopK]:
        """One forward of ``texts``, each truncated and padded to exactly ``length`` sub-tokens."""
        enc = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=length,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping")
        enc.pop("token_type_ids", None)
        enc = {key: v.to(self.device) for key, v in enc.items()}
        logits = self.model(**enc).logits.float()
        self.forwards += 1
        top_logits, top_ids = logits.topk(min(k, logits.shape[-1]), dim=-1)
        lse = logits.logsumexp(-1)
        lengths = enc["attention_mask"].sum(1).tolist()
        top_ids, top_logits, lse = top_ids.int().cpu(), top_logits.cpu(), lse.cpu()
        ids = enc["input_ids"].cpu()
        out = []
        for i, n in enumerate(lengths):
            sl = slice(0, n) if self.tokenizer.padding_side == "right" else slice(-n, None)
            offs = tuple((int(a), int(b)) for a, b in offsets[i, sl].tolist())
            out.append(
                MLMTopK(
                    ids[i, sl].clone(),
                    offs,
                    top_ids[i, sl].clone(),
                    top_logits[i, sl].clone(),
                    lse[i, sl].clone(),
                )
            )
        return out

    def clear_cache(self) -> None:
        self._cache.clear()


# == Loading ===============================================================================
def get_mlm(name: str, ctx: Context) -> MaskedLM:
    """The masked LM ``name`` on ``ctx.device`` (loaded once per process and device).

    ``name`` is ``"vladv-tiny-mlm"`` (built on first use), a local folder or a Hugging Face hub
    name (read from the local hub cache when offline). Failure raises a one-line VladvError.
    """
    path = str(prepare_mlm(ctx)) if name == EMBEDDED_MLM else name
    key = (path, str(ctx.device))
    if key not in _LOADED:
        tokenizer, model = _load_hf(path, name)
        _LOADED[key] = MaskedLM(tokenizer, model.to(ctx.device).eval(), name=name)
    return _LOADED[key]


def _load_hf(path: str, name: str) -> tuple[Any, torch.nn.Module]:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    attempts = [True] if hub_offline() or os.path.isdir(path) else [False, True]
    error: Exception | None = None
    with quiet_transformers():
        for local in attempts:
            try:
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
                model = AutoModelForMaskedLM.from_pretrained(path, local_files_only=local)
            except Exception as exc:  # noqa: BLE001 - hub/IO/config errors have many types
                error = exc
                continue
            if not getattr(tokenizer, "is_fast", False):
                raise VladvError(f"masked LM '{name}': a fast tokenizer (offsets) is required")
            return tokenizer, model.eval()
    first = first_line(error, 300) if error is not None else "no attempt"
    raise VladvError(f"cannot load masked LM '{name}' offline: {first}")


# == The embedded tiny MLM =================================================================
@dataclass(frozen=True)
class TinyMLMConfig:
    """Architecture and training recipe of ``vladv-tiny-mlm`` (part of its cache key)."""

    vocab_size: int = 1000
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 128
    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.01
    mask_prob: float = 0.15
    heldout: float = 0.02
    seed: int = 0


def _corpus_spec() -> Any:
    """The :data:`CORPUS_DATASET` spec from the plugin registry (its name, options class, data
    version and captions reader)."""
    from vladv.plugins import get_spec

    return get_spec("dataset", CORPUS_DATASET)


def _corpus_identity() -> dict[str, Any]:
    spec = _corpus_spec()
    return {
        "dataset": spec.name,
        "version": spec.version,
        "options": dataclasses.asdict(spec.options()),
    }


def embedded_corpus() -> list[str]:
    """The embedded MLM's training text: every caption of :data:`CORPUS_DATASET`'s train split
    with its default options, in dataset order (read through the registry, no images built)."""
    spec = _corpus_spec()
    if spec.captions is None:
        raise VladvError(
            f"dataset '{spec.name}' cannot list its captions without its images "
            f"(DatasetSpec.captions), which the embedded masked LM needs"
        )
    return [c for caps in spec.captions(spec.options(), "train") for c in caps]


def mlm_path(ctx: Context, config: TinyMLMConfig | None = None) -> Path:
    """Where the embedded MLM with ``config`` lives: ``models/vladv-tiny-mlm-<hash>``."""
    config = config or TinyMLMConfig()
    key = config_hash(
        {
            "format": _FORMAT_VERSION,
            "config": dataclasses.asdict(config),
            "corpus": _corpus_identity(),
        }
    )
    return ctx.cache_dir("models") / f"{EMBEDDED_MLM}-{key}"


def _recipe(config: TinyMLMConfig) -> dict[str, Any]:
    """What the vocabulary depends on besides the corpus: its size and the train/held-out split."""
    return {"vocab_size": config.vocab_size, "seed": config.seed, "heldout": config.heldout}


def committed_tokenizer(config: TinyMLMConfig, corpus: dict[str, Any]) -> dict[str, Any] | None:
    """The committed ``tokenizer.json`` object (:data:`COMMITTED_TOKENIZER`) when it was built for
    this corpus identity and recipe (vocabulary size, seed, held-out share), else None."""
    import json

    try:
        data = json.loads(COMMITTED_TOKENIZER.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("corpus") != corpus or any(data.get(k) != v for k, v in _recipe(config).items()):
        return None
    return data.get("tokenizer")


def write_committed_tokenizer(path: Path = COMMITTED_TOKENIZER) -> Path:
    """Learn the embedded MLM's WordPiece vocabulary anew (from today's corpus, as a build would)
    and write it to ``path``: what a maintainer runs after the world's captions changed. The
    result is one draw of a trainer that is not reproducible across processes; commit it."""
    import json

    config = TinyMLMConfig()
    train, _ = _split(embedded_corpus(), config)
    tok = build_tokenizer(train, config.vocab_size)
    data = json.loads(COMMITTED_TOKENIZER.read_text(encoding="utf-8"))
    data.update(
        corpus=_corpus_identity(),
        **_recipe(config),
        tokenizer=json.loads(tok.backend_tokenizer.to_str()),
    )
    atomic_write_json(Path(path), data)
    return Path(path)


def _complete(path: Path) -> bool:
    return (path / "training.json").is_file() and (path / "config.json").is_file()


def prepare_mlm(
    ctx: Context,
    force: bool = False,
    config: TinyMLMConfig | None = None,
    corpus: list[str] | None = None,
) -> Path:
    """Build (train and save) the embedded MLM unless cached; return its folder."""
    config = config or TinyMLMConfig()
    path = mlm_path(ctx, config)
    return build_once(
        path,
        lambda: path if _complete(path) and not force else None,
        lambda: _build_mlm(ctx, force, config, corpus, path),
        dim_notice(ctx),
        prebuilt=not force and corpus is None,
    )


def _build_mlm(
    ctx: Context, force: bool, config: TinyMLMConfig, corpus: list[str] | None, path: Path
) -> Path:
    console = get_console(ctx)
    console.print(
        f"building the embedded masked LM '{EMBEDDED_MLM}' (first use: {config.steps} "
        f"steps of {config.batch_size} captions; the time depends on the CPU's speed "
        f"and load, the progress bar shows what is left) → {path}"
    )
    tmp = scratch_dir(path)
    fixed = None
    if corpus is None:
        corpus = embedded_corpus()
        fixed = committed_tokenizer(config, _corpus_identity())
    with torch.enable_grad():  # callers may be inside no_grad (e.g. an attack's first use)
        stats = train_tiny_mlm(corpus, tmp, config, ctx, tokenizer=fixed)
    publish_dir(tmp, path, _complete, replace=force)
    console.print(
        f"{EMBEDDED_MLM}: {stats['seconds']:.0f} s, held-out masked-token accuracy "
        f"{100 * stats['heldout_accuracy']:.1f}%"
    )
    for key in [k for k in _LOADED if k[0] == str(path)]:
        del _LOADED[key]
    return path


def ensure_mlm(name: str, ctx: Context, force: bool = False) -> None:
    """Build the embedded MLM (or load a named one) ahead of the first attack (``vladv
    pretrain``)."""
    if name == EMBEDDED_MLM:
        prepare_mlm(ctx, force=force)
    else:
        get_mlm(name, ctx)


def build_tokenizer(corpus: list[str], vocab_size: int, fixed: dict[str, Any] | None = None) -> Any:
    """A lower-casing WordPiece tokenizer trained on ``corpus``, as a transformers fast
    tokenizer; with ``fixed`` (a ``tokenizer.json`` object), that tokenizer instead of training
    one. Training is not reproducible across processes (ties are broken in hash-map order)."""
    import json

    from tokenizers import BertWordPieceTokenizer, Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import BertTokenizerFast

    if fixed is not None:
        backend = Tokenizer.from_str(json.dumps(fixed))
    else:
        wp = BertWordPieceTokenizer(lowercase=True, clean_text=True, strip_accents=True)
        wp.train_from_iterator(
            corpus,
            vocab_size=vocab_size,
            min_frequency=2,
            show_progress=False,
            special_tokens=_SPECIALS,
            initial_alphabet=_ALPHABET,
        )
        cls, sep = wp.token_to_id("[CLS]"), wp.token_to_id("[SEP]")
        wp.post_processor = TemplateProcessing(  # [CLS] text [SEP] (explicit for transformers 4)
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
        backend = wp._tokenizer
    return BertTokenizerFast(
        tokenizer_object=backend,
        do_lower_case=True,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=128,
    )


def mask_tokens(
    ids: torch.Tensor,
    special: torch.Tensor,
    tokenizer: Any,
    prob: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: ``prob`` of the tokens are targets; 80% → [MASK], 10% random, 10% kept."""
    labels = ids.clone()
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & ~special
    if not chosen.any():  # at least one target per batch
        chosen.view(-1)[int((~special).view(-1).float().argmax())] = True
    labels[~chosen] = -100
    roll = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    rand = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[rand] = torch.randint(len(_SPECIALS), len(tokenizer), ids.shape, generator=generator)[
        rand
    ]
    return inputs, labels


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> tuple[torch.Tensor, ...]:
    enc = tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=max_length,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    special = enc["special_tokens_mask"].bool() | ~enc["attention_mask"].bool()
    return enc["input_ids"], enc["attention_mask"], special


@torch.no_grad()
def masked_accuracy(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: list[str],
    seed: int = 0,
    prob: float = 0.15,
    batch_size: int = 256,
) -> float:
    """Share of masked tokens (each replaced by [MASK]) the model predicts exactly."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    hit = total = 0
    device = next(model.parameters()).device
    for start in range(0, len(texts), batch_size):
        ids, att, special = _encode(tokenizer, texts[start : start + batch_size], 128)
        chosen = (torch.rand(ids.shape, generator=g) < prob) & ~special
        inputs = ids.masked_fill(chosen, tokenizer.mask_token_id)
        pred = model(input_ids=inputs.to(device), attention_mask=att.to(device)).logits.argmax(-1)
        hit += int((pred.cpu() == ids)[chosen].sum())
        total += int(chosen.sum())
    return hit / max(total, 1)


def _length_batches(
    texts: list[str], batch_size: int, generator: torch.Generator, pool: int = 8
) -> list[list[str]]:
    """One shuffled epoch in batches of similar length (less padding), in random batch order."""
    perm = torch.randperm(len(texts), generator=generator).tolist()
    batches = []
    for start in range(0, len(perm), batch_size * pool):
        chunk = [texts[i] for i in perm[start : start + batch_size * pool]]
        chunk = sorted(chunk, key=len)  # characters: a free proxy of the token count
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def _mlm_loss(
    model: Any, inputs: torch.Tensor, attention: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy at the target positions only (the vocabulary head runs on those rows)."""
    hidden = model.bert(input_ids=inputs, attention_mask=attention).last_hidden_state
    keep = labels != -100
    return torch.nn.functional.cross_entropy(model.cls(hidden[keep]), labels[keep])


def train_tiny_mlm(
    corpus: list[str],
    out_dir: Path,
    config: TinyMLMConfig,
    ctx: Context,
    tokenizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train the tiny BERT MLM on ``corpus`` and save it (safetensors) to ``out_dir``.

    ``tokenizer``: a fixed ``tokenizer.json`` object to use instead of training a WordPiece
    vocabulary (whose training is not reproducible across processes). Given the vocabulary,
    training is deterministic for ``config.seed`` (and the CPU). Returns (and writes to
    ``training.json``) the loss curve, held-out masked-token accuracy and wall time. On a CPU it
    runs single-threaded: its GEMMs are too small to gain from threads, and on oversubscribed
    cores threads cost up to 10×.
    """
    threads = torch.get_num_threads()
    if ctx.device.type == "cpu":
        torch.set_num_threads(1)
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):  # dropout draws from the global generator
            torch.manual_seed(config.seed)
            return _train(corpus, out_dir, config, ctx, tokenizer)
    finally:
        torch.set_num_threads(threads)


def _new_bert(
    tokenizer: Any, hidden: int, layers: int, heads: int, intermediate: int, positions: int = 128
) -> torch.nn.Module:
    from transformers import BertConfig, BertForMaskedLM

    return BertForMaskedLM(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            max_position_embeddings=positions,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def _split(
    corpus: list[str], config: TinyMLMConfig, g: torch.Generator | None = None
) -> tuple[list[str], list[str]]:
    """(training, held-out) distinct captions, shuffled by ``g`` (seeded by ``config.seed``)."""
    texts = list(dict.fromkeys(t.strip() for t in corpus if t.strip()))
    if len(texts) < 2:
        raise VladvError("the masked-LM corpus needs at least two distinct captions")
    g = g if g is not None else torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(texts), generator=g).tolist()
    n_held = min(max(1, int(len(texts) * config.heldout)), 1000)
    return [texts[i] for i in order[n_held:]], [texts[i] for i in order[:n_held]]


def _train(
    corpus: list[str],
    out_dir: Path,
    config: TinyMLMConfig,
    ctx: Context,
    fixed_tokenizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from rich.errors import LiveError
    from rich.progress import TextColumn

    start, cpu_start = time.perf_counter(), time.process_time()
    g = torch.Generator().manual_seed(config.seed)
    train, held = _split(corpus, config, g)
    tokenizer = build_tokenizer(train, config.vocab_size, fixed_tokenizer)
    model = (
        _new_bert(
            tokenizer,
            config.hidden_size,
            config.layers,
            config.heads,
            config.intermediate_size,
            config.max_positions,
        )
        .to(ctx.device)
        .train()
    )
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "LayerNorm" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "LayerNorm" not in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": other, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        rest = (step - config.warmup) / max(1, config.steps - config.warmup)
        return max(0.0, 0.5 * (1 + math.cos(math.pi * rest)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    losses: list[float] = []
    batches: list[list[str]] = []
    progress = make_progress(ctx, TextColumn("loss {task.fields[loss]:.3f}"))
    try:
        progress.start()
    except LiveError:  # rich < 14 cannot nest live displays (built inside the runner's bar)
        progress.disable = True
    with progress:
        task = progress.add_task(f"train {EMBEDDED_MLM}", total=config.steps, loss=float("nan"))
        for _ in range(config.steps):
            if not batches:
                batches = _length_batches(train, config.batch_size, g)
            ids, att, special = _encode(tokenizer, batches.pop(), config.max_positions)
            inputs, labels = mask_tokens(ids, special, tokenizer, config.mask_prob, g)
            loss = _mlm_loss(
                model, inputs.to(ctx.device), att.to(ctx.device), labels.to(ctx.device)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            progress.update(task, advance=1, loss=sum(losses[-20:]) / len(losses[-20:]))
    model.eval()
    accuracy = masked_accuracy(model, tokenizer, held, seed=config.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    stats = {
        "name": EMBEDDED_MLM,
        "config": dataclasses.asdict(config),
        "train_captions": len(train),
        "heldout_captions": len(held),
        "first_loss": sum(losses[:20]) / len(losses[:20]),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "heldout_accuracy": accuracy,
        "tokenizer": "committed" if fixed_tokenizer is not None else "trained",
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "losses": [round(v, 4) for v in losses],
    }
    atomic_write_json(out_dir / "training.json", stats)
    return stats


def save_random_mlm(
    corpus: list[str],
    path: str | Path,
    *,
    vocab_size: int = 300,
    hidden_size: int = 32,
    layers: int = 1,
    heads: int = 2,
    seed: int = 0,
) -> Path:
    """An untrained tiny BERT MLM with a WordPiece tokenizer fitted to ``corpus`` (test fixture)."""
    path = Path(path)
    tokenizer = build_tokenizer(corpus, vocab_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _new_bert(tokenizer, hidden_size, layers, heads, 2 * hidden_size).eval()
    with quiet_transformers():
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    return path

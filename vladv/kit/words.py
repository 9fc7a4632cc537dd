"""The word-substitution search (BERT-Attack) and the scores it maximizes.

:class:`WordSubstitutionSearch` is the text machinery the ``bert-attack``, SGA and Co-Attack
attacks and the MAT defense share (docs/algorithms.md#bert-attack-word-substitution; guide:
docs/kit.md):
rank words by importance, take candidates from a masked LM, and greedily substitute up to
``max_words`` words, batched across *all* captions: one scoring call for the importance of every
word of every caption, then one call per round (each caption still under budget tries its next
most important word), so the number of text-encoder forwards does not grow with the batch.

Deliberate differences from the reference code (Zoky-2020/SGA, Co-Attack ``bert_attack.py``):

* MLM candidates for a word come from its *own* sub-token positions; the reference reads the
  previous position (``[CLS]`` for the first word). ``reference_compat=True`` reproduces that
  off-by-one, the 30-token MLM truncation, the 0.3 logit threshold and KL word importance.
* Word importance is the attack objective itself evaluated on the sentence with the word replaced
  by ``[UNK]`` (image similarity for SGA); the reference uses the KL between text embeddings even
  in SGA. Only words that can be substituted (non-filter, with candidates) are scored.
* Multi-sub-token candidates (top-4 per piece, ≤12 pieces, first 24 combinations) are ranked by
  their perplexity under the clean sentence's MLM logits, not by an extra MLM forward on the
  combination alone.
* Leading/trailing punctuation and a capital initial stay in place (``"River."`` → ``"Lake."``);
  candidates must be single alphanumeric words, so one substitution is one changed word.
* The walk over words stops after ``max_rounds`` scoring rounds (0: no limit, as the reference).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from vladv.kit.mlm import MaskedLM, MLMTopK, get_mlm
from vladv.types import Context

__all__ = [
    "FILTER_WORDS",
    "WORD_PATTERN",
    "ImageGuidedScore",
    "KLScore",
    "Score",
    "TextEmbeddingCache",
    "TextScore",
    "WordSubstitutionSearch",
    "image_guided_score",
    "kl_score",
    "load_search",
]

Score = Callable[[list[str], torch.Tensor], torch.Tensor]
"""``score(candidates, owner) -> values``: higher is better for the attacker; ``owner[i]`` is the
index of the caption candidate ``i`` stems from (a :class:`TextScore` is one)."""

FILTER_WORDS: frozenset[str] = frozenset(
    """
a an the this that these those some any each every either neither no none all both half few
many much more most less least several such what which whose whichever whatever
i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his
himself she her hers herself it its itself they them their theirs themselves one ones oneself
who whom whoever someone somebody something anyone anybody anything everyone everybody
everything nobody noone nothing somewhere anywhere everywhere nowhere elsewhere
about above across after against along alongside amid amidst among amongst around as at
before behind below beneath beside besides between beyond by despite down during except for
from in inside into like near nearby of off on onto opposite out outside over past per since
than through throughout thru till to toward towards under underneath unlike until unto up upon
via with within without
and but or nor so yet if unless because although though while whereas whether once lest
whenever wherever however therefore thus hence moreover furthermore meanwhile otherwise
nevertheless nonetheless instead indeed also too either else
am is are was were be been being have has had having do does did doing done can could may
might must shall should will would ought need dare
isn isn't aren aren't wasn wasn't weren weren't hasn hasn't haven haven't hadn hadn't doesn
doesn't don don't didn didn't won won't wouldn wouldn't shan shan't shouldn shouldn't can't
cannot couldn couldn't mightn mightn't mustn mustn't needn needn't ain it's that's there's
here there where when why how then now again already always never ever often sometimes soon
still just only even very quite rather almost enough really perhaps maybe not yes
s t d ll m o re ve y b
's n't
. , ; : ! ? ' " ` - -- — – / \\ | ( ) [ ] { } < > @ # $ % ^ & * + = ~ _ · … ～
""".split()
)
"""Words never substituted nor used as substitutes: English function words and punctuation."""

_AFFIX = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)
WORD_PATTERN = re.compile(r"^[^\W_]+(?:['-][^\W_]+)*$")
"""A single alphanumeric word (inner ``'`` or ``-`` allowed): what a substitute must match, so
one substitution is one changed word."""


def _noop() -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------
# Objectives (higher = better for the attacker)
# ----------------------------------------------------------------------------------------------
class TextScore:
    """Scores candidate captions with a backbone's text tower (no grad, autocast, chunked).

    With a :class:`TextEmbeddingCache` as ``cache``, embeddings already computed for the same
    backbone are reused exactly (see there).
    """

    def __init__(
        self,
        backbone: Any,
        ctx: Context | None = None,
        chunk_size: int = 1024,
        cache: TextEmbeddingCache | None = None,
    ):
        self.backbone = backbone
        self.ctx = ctx
        self.chunk_size = chunk_size
        self.cache = cache

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.ctx.autocast() if self.ctx is not None else _noop()

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        if self.cache is not None:
            return self.cache.embed(self, texts)
        return torch.cat([self.encode(chunk) for chunk in self.chunks(texts)])

    def chunks(self, texts: list[str]) -> list[list[str]]:
        """``texts`` in the backbone calls of at most ``chunk_size`` texts that ``embed`` makes."""
        return [texts[s : s + self.chunk_size] for s in range(0, len(texts), self.chunk_size)]

    def encode(self, texts: list[str]) -> torch.Tensor:
        """One backbone call: float32 embeddings of ``texts`` under the context's autocast."""
        with self.autocast():
            return self.backbone.encode_text(texts).float()

    def values(self, emb: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        """The score of normalized text embeddings ``emb`` (differentiable)."""
        raise NotImplementedError

    def __call__(self, candidates: list[str], owner: torch.Tensor) -> torch.Tensor:
        return self.values(self.embed(candidates), owner)


class ImageGuidedScore(TextScore):
    """SGA: ``-cos(f_T(candidate), guidance[owner])`` (guidance rows are normalized)."""

    def __init__(
        self,
        backbone: Any,
        guidance: torch.Tensor,
        ctx: Context | None = None,
        cache: TextEmbeddingCache | None = None,
    ):
        super().__init__(backbone, ctx, cache=cache)
        self.guidance = F.normalize(guidance.detach().float(), dim=-1)

    def values(self, emb: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        guide = self.guidance.to(emb.device)[owner.to(emb.device)]
        return -(emb * guide).sum(-1)


class KLScore(TextScore):
    """Co-Attack: ``KL(softmax(e_clean[owner]) ‖ softmax(e_candidate))``, embeddings as logits."""

    def __init__(self, backbone: Any, clean_text_emb: torch.Tensor, ctx: Context | None = None):
        super().__init__(backbone, ctx)
        self.clean = clean_text_emb.detach().float()

    def values(self, emb: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
        target = self.clean.to(emb.device)[owner.to(emb.device)].softmax(-1)
        return F.kl_div(emb.log_softmax(-1), target, reduction="none").sum(-1)


class TextEmbeddingCache:
    """Text embeddings of one backbone (unchanged while the cache lives), reused exactly.

    Where the backbone guarantees batch-independent bits for a batch size
    (:meth:`~vladv.backbone.Backbone.text_rows_independent_from`: the embedded CLIP's row blocks on
    a CPU), every text of such a call is embedded once and reused by any later call, and the
    texts not seen yet are computed together (filled up with copies to that size). Elsewhere (a
    GPU, autocast, a smaller call) only a call repeating another exactly — the same texts in the
    same order — is reused. Either way the result equals a fresh :meth:`TextScore.embed` bit for
    bit. Counts: ``computed`` / ``reused`` texts.
    """

    def __init__(self) -> None:
        self.rows: dict[str, torch.Tensor] = {}
        self.calls: dict[tuple[str, ...], torch.Tensor] = {}
        self.computed = 0
        self.reused = 0

    def embed(self, score: TextScore, texts: list[str]) -> torch.Tensor:
        rows_from = getattr(score.backbone, "text_rows_independent_from", None)
        with score.autocast():
            at_least = rows_from() if callable(rows_from) else None
        chunks = score.chunks(texts)
        per_text = [at_least is not None and len(chunk) >= at_least for chunk in chunks]
        wanted = [t for chunk, p in zip(chunks, per_text, strict=True) if p for t in chunk]
        missing = list(dict.fromkeys(t for t in wanted if t not in self.rows))
        if missing:
            assert at_least is not None
            batch = missing + missing[:1] * (at_least - len(missing))
            # balanced parts (sizes differ by ≤ 1), each ≤ chunk_size where possible, ≥ at_least
            parts = max(1, min(-(-len(batch) // score.chunk_size), len(batch) // at_least))
            bounds = [len(batch) * i // parts for i in range(parts + 1)]
            emb = torch.cat([score.encode(batch[a:b]) for a, b in itertools.pairwise(bounds)])
            self.rows.update(zip(missing, emb))
            self.computed += len(missing)
        self.reused += len(wanted) - len(missing)
        out = []
        for chunk, p in zip(chunks, per_text, strict=True):
            if p:
                out.append(torch.stack([self.rows[t] for t in chunk]))
                continue
            key = tuple(chunk)
            if key in self.calls:
                self.reused += len(chunk)
            else:
                self.calls[key] = score.encode(chunk)
                self.computed += len(chunk)
            out.append(self.calls[key])
        return torch.cat(out)


_WORD_TOKENS: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


def _used_lengths(tokens: Any) -> torch.Tensor:
    """Tokens per row, specials included, padding not (an attention mask, else ids ≠ 0)."""
    if isinstance(tokens, dict):
        mask = tokens.get("attention_mask")
        return (
            mask.sum(1)
            if mask is not None
            else torch.full((len(tokens["input_ids"]),), tokens["input_ids"].shape[1])
        )
    return (tokens != 0).sum(1)


def _word_token_counts(backbone: Any, words: set[str]) -> dict[str, int]:
    """How many of the victim's tokens each word becomes on its own (memoized per backbone);
    key ``""`` holds the number of special tokens around every text."""
    counts = _WORD_TOKENS.setdefault(backbone, {})
    new = sorted(w for w in words | {""} if w not in counts)
    if new:
        used = _used_lengths(backbone.tokenize(new)).tolist()
        specials = counts.get("", used[new.index("")] if "" in new else 0)
        counts.update({w: int(n) - (0 if w == "" else specials) for w, n in zip(new, used)})
    return counts


def gradient_importance(score: TextScore, texts: list[str]) -> list[list[float] | None] | None:
    """Each word's importance for ``score``: the ℓ1 norm of the score's gradient with respect to
    the victim's input token embeddings, summed over the word's tokens (gradient-based word
    ranking as in A2T, Yoo & Qi, Findings of EMNLP 2021): one forward and backward for all
    captions instead of one forward per word and caption.

    Returns one list per caption (one value per space-separated word), None for a caption
    whose tokens do not split into its words (truncated, or a tokenizer that joins across
    spaces), or None altogether when the backbone exposes no ``token_embedding``.
    """
    backbone = score.backbone
    module = getattr(backbone, "token_embedding", None)
    if module is None or not texts:
        return None
    words = [t.split(" ") for t in texts]
    counts = _word_token_counts(backbone, {w for ws in words for w in ws})
    specials = counts[""]
    if specials not in (0, 2):  # an opening and a closing special token, or none
        return None
    tokens = backbone.tokenize(texts)
    used = _used_lengths(tokens).tolist()
    device = backbone.device
    tokens = (
        {k: v.to(device) for k, v in tokens.items()}
        if isinstance(tokens, dict)
        else tokens.to(device)
    )
    captured: list[torch.Tensor] = []

    def capture(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.detach().requires_grad_(True)
        captured.append(output)
        return output

    handle = module.register_forward_hook(capture)
    try:
        with torch.enable_grad(), score.autocast():
            emb = F.normalize(backbone.text_features(tokens).float(), dim=-1)
            values = score.values(emb, torch.arange(len(texts), device=emb.device))
            (grad,) = torch.autograd.grad(values.sum(), captured[0])
    finally:
        handle.remove()
    per_token = grad.float().abs().sum(-1).cpu()
    out: list[list[float] | None] = []
    for c, ws in enumerate(words):
        sizes = [counts[w] if w else 0 for w in ws]  # counts[""]: the specials
        if sum(sizes) + specials != used[c]:
            out.append(None)
            continue
        prefix = [0.0, *per_token[c].cumsum(0).tolist()]  # prefix[i]: tokens before i
        ends = (torch.tensor(sizes, dtype=torch.long).cumsum(0) + specials // 2).tolist()
        out.append([prefix[e] - prefix[e - n] for e, n in zip(ends, sizes, strict=True)])
    return out


def image_guided_score(
    backbone: Any,
    guidance: torch.Tensor,
    ctx: Context | None = None,
    cache: TextEmbeddingCache | None = None,
) -> ImageGuidedScore:
    """Score = −cos(f_T(candidate), guidance[owner]); ``guidance`` (T, D), one row per caption.
    ``cache``: reuse embeddings of earlier calls on the same backbone (:class:`TextEmbeddingCache`).
    """
    return ImageGuidedScore(backbone, guidance, ctx, cache)


def kl_score(backbone: Any, clean_text_emb: torch.Tensor, ctx: Context | None = None) -> KLScore:
    """Score = KL(softmax(e_orig[owner]) ‖ softmax(e_cand)) (Co-Attack's unimodal objective)."""
    return KLScore(backbone, clean_text_emb, ctx)


# ----------------------------------------------------------------------------------------------
# The search
# ----------------------------------------------------------------------------------------------
@dataclass
class _Slot:
    """A substitutable word: its index, punctuation around it and candidate replacements."""

    index: int
    prefix: str
    suffix: str
    candidates: list[str]


class WordSubstitutionSearch:
    """Greedy BERT-Attack word substitution over a batch of captions.

    ``run(texts, score)`` changes at most ``max_words`` space-separated words per caption, each a
    substitution by an MLM candidate that strictly raises ``score``. ``last_stats`` reports the
    scoring calls of the latest run.
    """

    def __init__(
        self,
        mlm: MaskedLM,
        *,
        k: int = 10,
        max_words: int = 1,
        reference_compat: bool = False,
        max_length: int = 77,
        max_rounds: int = 5,
        threshold: float | None = None,
        bpe_pieces: int = 12,
        bpe_topk: int = 4,
        bpe_combos: int = 24,
        filter_words: frozenset[str] = FILTER_WORDS,
        importance: str = "deletion",
    ):
        if k < 1 or max_words < 0 or max_rounds < 0:
            raise ValueError("k must be ≥ 1, max_words and max_rounds ≥ 0")
        if importance not in ("deletion", "gradient"):
            raise ValueError("importance must be 'deletion' or 'gradient'")
        self.importance = importance
        self.mlm = mlm
        self.k, self.max_words, self.max_rounds = k, max_words, max_rounds
        self.reference_compat = reference_compat
        self.max_length = min(max_length, 30) if reference_compat else max_length
        self.threshold = (0.3 if reference_compat else 0.0) if threshold is None else threshold
        self.bpe_pieces, self.bpe_topk, self.bpe_combos = bpe_pieces, bpe_topk, bpe_combos
        self.filter_words = filter_words
        tok = mlm.tokenizer
        self._special = set(tok.all_special_tokens)
        self.last_stats: dict[str, int] = {
            "score_calls": 0,
            "gradient_calls": 0,
            "rounds": 0,
            "changed": 0,
        }
        # pure functions of their keys (the tokenizer and settings are fixed): memoized
        self._strings: dict[tuple[int, ...], str | None] = {}
        self._slot_memo: OrderedDict[str, list[_Slot]] = OrderedDict()

    # -- candidates ---------------------------------------------------------------------------
    def _token_string(self, ids: list[int]) -> str | None:
        key = tuple(ids)
        if key not in self._strings:
            tokens = self.mlm.tokenizer.convert_ids_to_tokens(ids)
            self._strings[key] = (
                None
                if any(t in self._special for t in tokens) or tokens[0].startswith("##")
                else self.mlm.tokenizer.convert_tokens_to_string(tokens).strip()
            )
        return self._strings[key]

    def _raw_candidates(
        self, top: MLMTopK, rows: list[int], top_lists: tuple[list, list]
    ) -> list[str]:
        """The MLM's candidate strings for the word on sub-token ``rows`` (best first);
        ``top_lists``: ``top.ids`` and ``top.logits`` as lists (converted once per text)."""
        if len(rows) == 1:
            ids, logits = top_lists
            out = []
            for tid, logit in zip(ids[rows[0]], logits[rows[0]], strict=True):
                if self.threshold != 0 and logit < self.threshold:
                    break
                out.append(self._token_string([tid]))
            return [s for s in out if s]
        rows = rows[: self.bpe_pieces]
        ids = top.ids[rows, : self.bpe_topk].tolist()  # Python lists: no per-element tensor ops
        logp = (top.logits[rows, : self.bpe_topk] - top.logsumexp[rows].unsqueeze(1)).tolist()
        combos: list[tuple[int, ...]] = [()]
        for _ in range(len(rows)):  # lexicographic product, pruned to the first combinations
            combos = [c + (j,) for c in combos[: self.bpe_combos] for j in range(len(ids[0]))]
        combos = combos[: self.bpe_combos]
        nll = [-sum(logp[r][j] for r, j in enumerate(c)) / len(c) for c in combos]
        ranked = [c for _, c in sorted(zip(nll, combos, strict=True), key=lambda p: p[0])]
        out = [self._token_string([ids[r][j] for r, j in enumerate(c)]) for c in ranked]
        return [s for s in out if s]

    def _slots(self, text: str, top: MLMTopK) -> list[_Slot]:
        """Substitutable words of ``text`` with their filtered candidates."""
        slots = []
        spans = [(s, e) for s, e in top.offsets if e > s]
        rows_of = {span: p for p, span in enumerate(top.offsets) if span[1] > span[0]}
        top_lists = (top.ids.tolist(), top.logits.tolist())  # once per text, not per word
        start = 0
        for index, word in enumerate(text.split(" ")):
            begin, start = start, start + len(word) + 1
            m = _AFFIX.match(word)
            prefix, core, suffix = m.group(1), m.group(2), m.group(3)
            if (
                not core
                or any(ch.isspace() for ch in word)
                or core.lower() in self.filter_words
                or word.lower() in self.filter_words
            ):
                continue
            lo, hi = begin + len(prefix), begin + len(prefix) + len(core)
            inside = [(s, e) for s, e in spans if s >= lo and e <= hi]
            if not inside or sum(e - s for s, e in inside) != hi - lo:
                continue  # truncated away, or tokens straddle the word's edges
            rows = [rows_of[span] for span in inside]
            if self.reference_compat:
                rows = [p - 1 for p in rows]
                if rows[0] < 0:
                    continue
            seen, cands = {core.lower()}, []
            for cand in self._raw_candidates(top, rows, top_lists):
                low = cand.lower()
                if (
                    low in seen
                    or "##" in cand
                    or not WORD_PATTERN.match(cand)
                    or low in self.filter_words
                ):
                    continue
                seen.add(low)
                if core[:1].isupper() and core[1:].islower():
                    cand = cand[:1].upper() + cand[1:]
                cands.append(cand)
            if cands:
                slots.append(_Slot(index, prefix, suffix, cands))
        return slots

    def clear_cache(self) -> None:
        """Forget the per-text word slots (the memo of :meth:`run`; benches time cold runs)."""
        self._slot_memo.clear()

    def _cached_slots(self, text: str, top: MLMTopK) -> list[_Slot]:
        """:meth:`_slots`, memoized per text (``top`` is the MLM's fixed result for ``text``)."""
        memo = self._slot_memo
        if text in memo:
            memo.move_to_end(text)
            return memo[text]
        memo[text] = slots = self._slots(text, top)
        if len(memo) > 32_768:
            memo.popitem(last=False)
        return slots

    # -- search -------------------------------------------------------------------------------
    def run(
        self,
        texts: list[str],
        score: Score,
        *,
        importance: Score | None = None,
        early_stop: bool = False,
    ) -> list[str]:
        """Adversarial versions of ``texts`` (same order), at most ``max_words`` words changed each.

        ``score(candidates, owner)`` → higher is better for the attacker; ``owner[i]`` is the index
        in ``texts`` of candidate ``i``. ``importance`` scores the ``[UNK]``-masked sentences
        (default: ``score``; with ``reference_compat`` and a :class:`TextScore`, the reference's KL
        between text embeddings); in a search built with ``importance="gradient"`` a
        :class:`TextScore` ranks the words by its gradient instead (:func:`gradient_importance`;
        captions it cannot align, and backbones without a ``token_embedding``, fall back to the
        ``[UNK]`` sentences).
        ``early_stop`` applies TextAttack's rules: ``score`` returns
        ``(values, succeeded)``, captions whose clean text already succeeds are left unchanged
        and a caption stops at its first successful substitution (one more score call).
        """
        texts = list(texts)
        self.last_stats = {"score_calls": 0, "gradient_calls": 0, "rounds": 0, "changed": 0}
        if self.max_words == 0 or not texts:
            return texts
        skip: set[int] = set()
        if early_stop:
            _, ok = self._call(score, texts, list(range(len(texts))), flags=True)
            skip = {c for c, s in enumerate(ok.tolist()) if s}
        tops = self.mlm.topk(texts, self.k, self.max_length)
        slots = [
            [] if c in skip else self._cached_slots(t, top)
            for c, (t, top) in enumerate(zip(texts, tops, strict=True))
        ]
        words = [t.split(" ") for t in texts]
        if importance is None and self.reference_compat and isinstance(score, TextScore):
            importance = kl_score(score.backbone, score.embed(texts), score.ctx)
        importance = importance or score

        by_gradient: dict[int, list[float]] = {}
        if self.importance == "gradient" and isinstance(importance, TextScore):
            todo = [c for c in range(len(texts)) if slots[c]]
            got = gradient_importance(importance, [texts[c] for c in todo]) if todo else None
            if got is not None:
                self.last_stats["gradient_calls"] += 1
                by_gradient = {c: v for c, v in zip(todo, got, strict=True) if v is not None}
        unk, masked, owner = self.mlm.unk_token, [], []
        for c, caption_slots in enumerate(slots):
            if c in by_gradient:
                continue
            for slot in caption_slots:
                masked.append(" ".join(words[c][: slot.index] + [unk] + words[c][slot.index + 1 :]))
                owner.append(c)
        if not masked and not by_gradient:
            return texts
        imp = self._call(importance, masked, owner)[0].tolist() if masked else []
        order: list[list[_Slot]] = [[] for _ in texts]
        pos = 0
        for c, caption_slots in enumerate(slots):
            if c in by_gradient:
                values = [by_gradient[c][slot.index] for slot in caption_slots]
            else:
                values = imp[pos : pos + len(caption_slots)]
                pos += len(caption_slots)
            ranked = sorted(range(len(caption_slots)), key=lambda i: values[i], reverse=True)
            order[c] = [caption_slots[i] for i in ranked]

        changed = [0] * len(texts)
        nxt = [0] * len(texts)
        active = [c for c in range(len(texts)) if order[c]]
        while active and (self.max_rounds == 0 or self.last_stats["rounds"] < self.max_rounds):
            sentences = [" ".join(words[c]) for c in active]
            owner = list(active)
            tried: list[tuple[int, _Slot, str]] = []
            for c in active:
                slot = order[c][nxt[c]]
                nxt[c] += 1
                for cand in slot.candidates:
                    new = list(words[c])
                    new[slot.index] = slot.prefix + cand + slot.suffix
                    sentences.append(" ".join(new))
                    owner.append(c)
                    tried.append((c, slot, new[slot.index]))
            values, ok = self._call(score, sentences, owner, flags=early_stop)
            values = values.tolist()
            self.last_stats["rounds"] += 1
            best = {c: (values[i], None, None, i) for i, c in enumerate(active)}
            for i, ((c, slot, word), value) in enumerate(
                zip(tried, values[len(active) :], strict=True), len(active)
            ):
                if value > best[c][0]:
                    best[c] = (value, slot, word, i)
            for c, (_, slot, word, i) in best.items():
                if slot is not None:
                    words[c][slot.index] = word
                    changed[c] += 1
                    if early_stop and ok[i]:
                        skip.add(c)
            active = [
                c
                for c in active
                if changed[c] < self.max_words and nxt[c] < len(order[c]) and c not in skip
            ]
        self.last_stats["changed"] = sum(changed)
        return [" ".join(w) for w in words]

    def _call(
        self, score: Score, sentences: list[str], owner: list[int], flags: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(values, succeeded flags or None); ``flags`` requires a score returning both."""
        self.last_stats["score_calls"] += 1
        out: Any = score(sentences, torch.tensor(owner, dtype=torch.long))
        values, ok = out if isinstance(out, tuple) else (out, None)
        if flags and ok is None:
            raise ValueError("early_stop needs a score that returns (values, succeeded)")
        values = values.detach().float().cpu().reshape(-1)
        return values, (ok.detach().cpu().reshape(-1).bool() if ok is not None else None)


def load_search(mlm: str, ctx: Context, **settings: Any) -> WordSubstitutionSearch:
    """A :class:`WordSubstitutionSearch` over the masked LM ``mlm`` with ``settings`` (``k``,
    ``max_words``, ``reference_compat``, ...): the setup every attack of the search shares.

    ``mlm`` is any :func:`~vladv.kit.mlm.get_mlm` name (the embedded ``vladv-tiny-mlm``, a
    folder, a hub name). It loads with gradients enabled: a first use may train the embedded
    MLM, also from inside an attack's ``no_grad``. Build the search on first use, not in the
    attack's factory (factories stay cheap).
    """
    with torch.enable_grad():
        model = get_mlm(mlm, ctx)
    return WordSubstitutionSearch(model, **settings)

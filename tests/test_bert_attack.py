"""BERT-Attack: MLM candidate alignment, the word budget, batched scoring, and the plugin end to
end."""

from __future__ import annotations

import types

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vladv.budget import words_changed
from vladv.testing import COLORS, PLACES, THINGS, TinyBackbone, registered_plugin, tiny_plugin
from vladv.types import Context
from vladv_plugins import bert_attack as B
from vladv_plugins.mlm import MaskedLM, build_tokenizer, get_mlm, save_random_mlm

CORPUS = [
    f"a {c} {t} {p} a {u} number {i}"
    for i in range(4)
    for c in COLORS
    for t in THINGS
    for p in PLACES
    for u in THINGS[:2]
]


@pytest.fixture(scope="module")
def mlm_path(tmp_path_factory):
    extra = ["farmhouses with orange roofs beside the harbour."] * 3
    return str(save_random_mlm(CORPUS + extra, tmp_path_factory.mktemp("mlm"), vocab_size=200))


@pytest.fixture(scope="module")
def mlm(mlm_path):
    return get_mlm(mlm_path, Context())


# ----------------------------------------------------------------------------------------------
# A controlled MLM: position p predicts a known ranked list of tokens
# ----------------------------------------------------------------------------------------------
VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "red",
    "house",
    "near",
    "lake",
    "zero",
    "green",
    "tree",
    "road",
    "field",
    "##s",
    "##y",
    "blue",
    "a",
    ".",
]


class PositionMLM(torch.nn.Module):
    """Logits where row p ranks ``table[p]`` first (10, 9, 8, ...) and everything else far below."""

    def __init__(self, table: dict[int, list[str]]):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.table = {p: [VOCAB.index(t) for t in toks] for p, toks in table.items()}

    def forward(self, input_ids, attention_mask=None, **kwargs):
        b, n = input_ids.shape
        logits = torch.full((b, n, len(VOCAB)), -20.0) - 0.01 * torch.arange(len(VOCAB))
        for p, ids in self.table.items():
            for rank, tid in enumerate(ids):
                if p < n:
                    logits[:, p, tid] = 10.0 - rank
        return types.SimpleNamespace(logits=logits)


def position_mlm(table: dict[int, list[str]]) -> MaskedLM:
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    wp = BertWordPieceTokenizer({t: i for i, t in enumerate(VOCAB)}, lowercase=True)
    tok = BertTokenizerFast(
        tokenizer_object=wp._tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    return MaskedLM(tok, PositionMLM(table))


def differing_words(texts):
    """A score that rewards every changed word (so every candidate beats the current text)."""

    def score(candidates, owner):
        return torch.tensor(
            [
                float(sum(a != b for a, b in zip(c.split(" "), texts[o].split(" "))))
                for c, o in zip(candidates, owner.tolist())
            ]
        )

    return score


TABLE = {0: ["zero"], 1: ["green"], 2: ["tree"], 3: ["blue"], 4: ["field"], 5: ["road"]}


def test_candidates_come_from_the_words_own_position():
    texts = ["red house near lake"]  # [CLS]=0 red=1 house=2 near=3 lake=4 [SEP]=5
    search = B.WordSubstitutionSearch(position_mlm(TABLE), k=1, max_words=4)
    assert search.run(texts, differing_words(texts)) == ["green tree near field"]


def test_reference_compat_reads_the_previous_position():
    texts = ["red house near lake"]
    search = B.WordSubstitutionSearch(position_mlm(TABLE), k=1, max_words=4, reference_compat=True)
    assert search.run(texts, differing_words(texts), importance=differing_words(texts)) == [
        "zero green near blue"
    ]  # red←[CLS], house←red's row, lake←near's row


def test_multi_piece_words_rank_combinations_by_perplexity():
    # "houses" = house ##s at rows 2-3; top-4 per row, combinations ranked by in-context NLL
    table = {2: ["tree", "road", "lake", "house"], 3: ["##s", "##y", "blue", "near"]}
    search = B.WordSubstitutionSearch(position_mlm(table), k=4, max_words=1)
    top = search.mlm.topk(["red houses"], 4, 77)[0]
    [slot] = search._slots("red houses", top)  # "red" row 1 predicts nothing valid
    assert slot.index == 1
    # (tree,##s)=20 > (tree,##y)=(road,##s)=19 > ...; "tree blue" etc. are two words: dropped
    assert slot.candidates[:5] == ["trees", "treey", "roads", "roady", "lakes"]
    assert "houses" not in slot.candidates and all(" " not in c for c in slot.candidates)


def test_punctuation_case_and_filter_words():
    table = {1: ["green"], 2: ["a"], 3: ["road"]}
    texts = ["Red near lake."]
    search = B.WordSubstitutionSearch(position_mlm(table), k=2, max_words=3)
    assert search.run(texts, differing_words(texts)) == ["Green near road."]


def test_threshold_and_truncation_in_reference_compat():
    table = {0: ["zero", "blue"], 1: ["green"]}
    mlm = position_mlm(table)
    mlm.model.table[0] = [VOCAB.index("zero")]  # only one logit above 0.3
    search = B.WordSubstitutionSearch(mlm, k=2, reference_compat=True)
    assert search.max_length == 30 and search.threshold == 0.3
    [slot] = search._slots("red", mlm.topk(["red"], 2, 30)[0])
    assert slot.candidates == ["zero"]
    mlm.model.table.update({p: [VOCAB.index("green")] for p in range(1, 50)})
    long = " ".join(["red"] * 40)
    slots = search._slots(long, mlm.topk([long], 2, 30)[0])
    assert [s.index for s in slots] == list(range(28))
    assert max(s.index for s in slots) == 27  # words past the 30-token window are never touched


# ----------------------------------------------------------------------------------------------
# Budget, determinism and batching with a real (tiny, random) MLM
# ----------------------------------------------------------------------------------------------
WORDS = [
    *COLORS,
    *THINGS,
    *PLACES,
    "a",
    "the",
    "of",
    "lake.",
    "Red",
    "house,",
    "harbour",
    "(x)",
    "farmhouses",
    "42",
    "-",
    "",
    "tab\tword",
    "naïve",
    "[UNK]",
    "[MASK]",
]


class CountingScore(B.ImageGuidedScore):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.rows: list[int] = []

    def __call__(self, candidates, owner):
        self.calls += 1
        self.rows.append(len(candidates))
        return super().__call__(candidates, owner)


def guided(texts, seed=0):
    g = torch.Generator().manual_seed(seed)
    return CountingScore(TinyBackbone().eval(), torch.randn(len(texts), 16, generator=g))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join),
        min_size=1,
        max_size=6,
    ),
    k=st.integers(1, 8),
    max_words=st.integers(0, 3),
    compat=st.booleans(),
    rounds=st.integers(0, 4),
    importance=st.sampled_from(["deletion", "gradient"]),
)
def test_budget_is_never_exceeded_and_runs_are_deterministic(
    mlm, texts, k, max_words, compat, rounds, importance
):
    def attack():
        search = B.WordSubstitutionSearch(
            mlm,
            k=k,
            max_words=max_words,
            reference_compat=compat,
            max_rounds=rounds,
            importance=importance,
        )
        return search.run(texts, guided(texts)), search.last_stats

    out, stats = attack()
    assert len(out) == len(texts)
    assert all(words_changed(a, b) <= max_words for a, b in zip(texts, out))
    assert all(len(a.split(" ")) == len(b.split(" ")) for a, b in zip(texts, out))
    assert attack() == (out, stats)
    assert sum(a != b for a, b in zip(texts, out)) <= stats["changed"]


def test_score_calls_are_batched_across_captions(mlm):
    calls = {}
    for n in (2, 40):
        texts = [CORPUS[(7 * i) % len(CORPUS)] for i in range(n)]
        score = guided(texts)
        search = B.WordSubstitutionSearch(mlm, k=10, max_words=1, max_rounds=5)
        before = mlm.forwards
        search.run(texts, score)
        assert mlm.forwards - before <= 1  # one MLM forward for all captions
        assert score.calls == search.last_stats["score_calls"] <= 6
        calls[n] = score.calls
        # the first call scores every substitutable word of every caption at once
        assert score.rows[0] >= 2 * n
    assert calls[40] <= 6 and calls[2] <= 6


def _spy_class(base, seen):
    class Spy(base):
        def __call__(self, candidates, owner):
            seen.extend(candidates)
            return super().__call__(candidates, owner)

    return Spy


def test_gradient_importance_replaces_the_unk_sentences(mlm):
    texts = [CORPUS[(7 * i) % len(CORPUS)] for i in range(12)]
    runs = {}
    for importance in ("deletion", "gradient"):
        score = guided(texts)
        seen: list[str] = []
        score.__class__ = _spy_class(type(score), seen)
        search = B.WordSubstitutionSearch(mlm, k=5, max_words=1, importance=importance)
        out = search.run(texts, score)
        assert all(words_changed(a, b) <= 1 for a, b in zip(texts, out))
        runs[importance] = (search.last_stats, any("[UNK]" in t for t in seen), out)
    (stats_d, unk_d, _), (stats_g, unk_g, out_g) = runs["deletion"], runs["gradient"]
    assert unk_d and stats_d["gradient_calls"] == 0
    assert not unk_g and stats_g["gradient_calls"] == 1
    assert (
        stats_g["score_calls"] == stats_d["score_calls"] - 1
        or stats_g["rounds"] != stats_d["rounds"]
    )
    assert out_g != texts  # it still attacks


def test_gradient_importance_falls_back_without_a_token_embedding(mlm, monkeypatch):
    texts = [CORPUS[(5 * i) % len(CORPUS)] for i in range(6)]
    score = guided(texts)
    monkeypatch.setattr(TinyBackbone, "token_embedding", property(lambda self: None))
    search = B.WordSubstitutionSearch(mlm, k=5, max_words=1, importance="gradient")
    search.run(texts, score)
    assert search.last_stats["gradient_calls"] == 0 and score.rows[0] >= 2 * len(texts)
    with pytest.raises(ValueError, match="importance"):
        B.WordSubstitutionSearch(mlm, importance="random")


def test_gradient_importance_sums_each_words_own_tokens():
    """On the embedded CLIP's BPE tokenizer (punctuation and capitals become tokens of their
    own), each word's value is the gradient norm of exactly its tokens; located here
    independently, by tokenizing the caption's growing prefixes."""
    import open_clip

    from vladv.kit.words import gradient_importance
    from vladv_plugins import clip_pretrain as C
    from vladv_plugins.clip_backbone import ClipBackbone

    C.register_tiny_config()
    torch.manual_seed(0)
    model = open_clip.create_model(C.DEFAULT_MODEL).eval()
    bb = ClipBackbone(model, C.get_tokenizer(C.DEFAULT_MODEL))
    texts = ["A red House, near two planes.", "farmland  beside (a) river", "x " * 70]
    guide = torch.nn.functional.normalize(torch.randn(3, 128, generator=torch.Generator()), dim=-1)
    score = B.image_guided_score(bb, guide)
    got = gradient_importance(score, texts)
    assert got[2] is None  # truncated: its tokens do not split into its words

    captured = []
    handle = model.token_embedding.register_forward_hook(
        lambda m, i, o: captured.append(o.detach().requires_grad_(True)) or captured[-1]
    )
    tokens = bb.tokenize(texts[:2])
    emb = torch.nn.functional.normalize(bb.text_features(tokens).float(), dim=-1)
    handle.remove()
    (grad,) = torch.autograd.grad(score.values(emb, torch.arange(2)).sum(), captured[0])
    per_token = grad.abs().sum(-1)
    for c, text in enumerate(texts[:2]):
        words = text.split(" ")
        ends = [
            int((bb.tokenize([" ".join(words[: j + 1])]) != 0).sum()) - 1 for j in range(len(words))
        ]
        starts = [1, *ends[:-1]]
        want = [float(per_token[c, a:b].sum()) for a, b in zip(starts, ends)]
        assert len(got[c]) == len(words)
        assert got[c] == pytest.approx(want, rel=1e-5, abs=1e-9)
    assert got[1][1] == 0.0  # the empty word between two spaces has no tokens


def test_scores_follow_their_definitions():
    bb = TinyBackbone().eval()
    texts = ["a red house", "a blue ship"]
    emb = bb.encode_text(texts)
    owner = torch.tensor([1, 0])
    guide = torch.nn.functional.normalize(torch.randn(2, 16), dim=-1)
    got = B.image_guided_score(bb, guide)(texts, owner)
    assert torch.allclose(got, -(emb * guide[owner]).sum(-1), atol=1e-6)
    kl = B.kl_score(bb, emb)(texts, torch.tensor([0, 1]))
    assert torch.allclose(kl, torch.zeros(2), atol=1e-6)
    kl = B.kl_score(bb, emb)(texts, owner)
    p, q = emb[owner].softmax(-1), emb.softmax(-1)
    assert torch.allclose(kl, (p * (p.log() - q.log())).sum(-1), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# The plugin
# ----------------------------------------------------------------------------------------------
def test_plugin_keeps_images_and_respects_the_budget(mlm_path):
    from vladv.data import pair_loader
    from vladv.testing import tiny_dataset

    batch = next(iter(pair_loader(tiny_dataset(3, captions_per_image=2), 3)))
    model = TinyBackbone().eval()
    for objective in ("image", "kl"):
        opts = B.BertAttackOptions(mlm=mlm_path, objective=objective, max_words=2)
        attack = B.BertAttack(opts, Context())
        assert attack.threat_model.modality == "text" and attack.threat_model.max_words == 2
        out = attack.perturb(model, batch, torch.Generator().manual_seed(0))
        assert torch.equal(out.images, batch.images)
        assert all(words_changed(a, b) <= 2 for a, b in zip(batch.texts, out.texts))
        assert not model.training


def test_bert_attack_through_the_runner(mlm_path):
    from vladv.experiment import run

    with registered_plugin(tiny_plugin):
        [rec] = run(
            output=False,
            backbone="tiny",
            dataset="tiny",
            attack="bert-attack",
            progress=False,
            device="cpu",
            attack_options={"mlm": mlm_path},
        )
    metrics = rec["metrics"]
    assert metrics["budget"]["max_words_changed"] <= 1
    assert metrics["budget"]["max_linf"] == 0
    assert metrics["budget"]["mean_words_changed"] > 0
    assert metrics["adversarial"]["ir_r1"] <= metrics["clean"]["ir_r1"]
    assert rec["config"]["attack"]["threat_model"] == {
        "modality": "text",
        "norm": None,
        "eps": 0.0,
        "max_words": 1,
    }


def test_unknown_objective_is_an_option_error():
    from vladv.errors import OptionError
    from vladv.options import resolve_options

    with pytest.raises(OptionError, match="objective"):
        resolve_options("attack 'bert-attack'", B.BertAttackOptions, {"objective": "text"})
    opts = resolve_options(
        "attack 'bert-attack'",
        B.BertAttackOptions,
        {"max_words": "2", "reference_compat": "true", "objective": "kl"},
    )
    assert opts.max_words == 2 and opts.reference_compat and opts.objective == "kl"


def test_build_tokenizer_is_uncased_wordpiece():
    tok = build_tokenizer(CORPUS, 200)
    assert tok.tokenize("A RED House") == ["a", "red", "house"]
    assert tok.tokenize("houses")[0] == "house" and tok.tokenize("houses")[1].startswith("##")

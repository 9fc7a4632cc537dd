"""Masked LMs for BERT-Attack: loading, batched cached top-k, and the embedded tiny MLM's
training."""

from __future__ import annotations

import json

import pytest
import torch

from vladv.errors import VladvError
from vladv.kit import mlm as M
from vladv.testing import COLORS, PLACES, THINGS
from vladv.types import Context

CORPUS = [
    f"a {c} {t} {p} a {u} number {i}"
    for i in range(4)
    for c in COLORS
    for t in THINGS
    for p in PLACES
    for u in THINGS[:2]
]


@pytest.fixture(scope="module")
def tiny_mlm_path(tmp_path_factory):
    return M.save_random_mlm(
        CORPUS + ["farmhouses with orange roofs."] * 3,
        tmp_path_factory.mktemp("mlm"),
        vocab_size=200,
    )


def test_get_mlm_loads_a_local_folder_once_in_eval_mode(tiny_mlm_path):
    ctx = Context()
    mlm = M.get_mlm(str(tiny_mlm_path), ctx)
    assert M.get_mlm(str(tiny_mlm_path), ctx) is mlm
    assert not mlm.model.training and mlm.device == ctx.device
    assert mlm.tokenizer.is_fast and mlm.unk_token == "[UNK]"
    assert mlm.tokenizer.tokenize("A red house.") == ["a", "red", "house", "."]


def test_topk_is_one_forward_per_batch_and_cached(tiny_mlm_path):
    mlm = M.MaskedLM(*M._load_hf(str(tiny_mlm_path), "fixture"))
    texts = ["a red house near a lake", "a blue ship", "a red house near a lake"]
    out = mlm.topk(texts, 5)
    assert mlm.forwards == 1 and len(out) == 3 and out[0] is out[2]
    first = out[0]
    n = len(first.input_ids)
    assert n == 8  # [CLS] + 6 words + [SEP]
    assert first.ids.shape == first.logits.shape == (n, 5) and first.logsumexp.shape == (n,)
    assert first.offsets[0] == (0, 0) and first.offsets[1] == (0, 1)
    assert torch.all(first.logits[:, :-1] >= first.logits[:, 1:])  # sorted
    assert torch.all(first.logits[:, 0] <= first.logsumexp)
    # the same rows as an unbatched forward on the sentence alone (padding does not leak)
    with torch.no_grad():
        enc = mlm.tokenizer(texts[1], return_tensors="pt")
        alone = mlm.model(input_ids=enc["input_ids"]).logits[0]
    assert torch.allclose(alone.topk(5).values, out[1].logits, atol=1e-4)
    again = mlm.topk(texts[:2], 5)
    assert mlm.forwards == 1 and again[0] is first  # clean results are cached
    mlm.topk(texts[:2], 3)
    assert mlm.forwards == 2  # another k is another key


def test_results_do_not_depend_on_the_batch_nor_on_the_history(tiny_mlm_path):
    """A text's top-k is bit-identical whether it ran alone or first met longer texts in a batch,
    so cached results (computed in whichever batch came first) equal a recomputation."""
    mlm = M.MaskedLM(*M._load_hf(str(tiny_mlm_path), "fixture"))
    texts = [
        f"a {c} {t} {p} a {u}"
        for c in COLORS[:3]
        for t in THINGS[:3]
        for p in PLACES[:2]
        for u in THINGS[3:5]
    ]
    longer = [
        "a red house near a lake and a blue ship beside a small green tree " * 3,
        "farmhouses with orange roofs near a river",
    ]
    alone = []
    for text in texts:
        mlm.clear_cache()
        alone.append(mlm.topk([text], 5, 77)[0])
    mlm.clear_cache()
    mixed = mlm.topk(longer + texts, 5, 77)[len(longer) :]
    cached = mlm.topk(texts, 5, 77)
    for a, b, c in zip(alone, mixed, cached, strict=True):
        assert torch.equal(a.ids, b.ids) and torch.equal(a.logits, b.logits)
        assert torch.equal(a.logsumexp, b.logsumexp) and a.offsets == b.offsets and c is b
    assert mlm.forwards == len(texts) + 2  # then one forward per length bucket (two here)
    small = M.MaskedLM(mlm.tokenizer, mlm.model, cache_size=2)  # a call larger than the cache
    assert [r.ids.tolist() for r in small.topk(texts, 5, 77)] == [r.ids.tolist() for r in alone]


def test_unknown_mlm_is_a_one_line_error_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VladvError, match="cannot load masked LM 'no-such/mlm-xyz' offline"):
        M.get_mlm("no-such/mlm-xyz", Context())


def test_masking_follows_80_10_10():
    tok = M.build_tokenizer(CORPUS, 200)
    ids = torch.randint(5, len(tok), (400, 50))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    inputs, labels = M.mask_tokens(ids, special, tok, 0.15, torch.Generator().manual_seed(0))
    target = labels != -100
    assert not target[:, 0].any()
    assert 0.13 < target.float().mean() < 0.17
    masked = (inputs == tok.mask_token_id) & target
    kept = (inputs == ids) & target
    assert 0.77 < masked.sum() / target.sum() < 0.83
    assert 0.07 < kept.sum() / target.sum() < 0.14  # 10% kept + random draws of the same id
    assert torch.equal(labels[target], ids[target]) and torch.equal(inputs[~target], ids[~target])


SMALL = M.TinyMLMConfig(
    vocab_size=200,
    hidden_size=32,
    layers=1,
    heads=2,
    intermediate_size=64,
    steps=60,
    batch_size=32,
    warmup=5,
    lr=5e-3,
    heldout=0.05,
)


def test_embedded_training_learns_is_deterministic_and_reloads(tmp_path, monkeypatch):
    ctx = Context(progress=False, home=tmp_path / "home")
    path = M.prepare_mlm(ctx, config=SMALL, corpus=CORPUS)
    assert path == M.mlm_path(ctx, SMALL) and path.name.startswith("vladv-tiny-mlm-")
    assert (path / "model.safetensors").is_file()
    stats = json.loads((path / "training.json").read_text())
    assert stats["final_loss"] < stats["first_loss"] - 1.0
    assert 0.0 <= stats["heldout_accuracy"] <= 1.0
    mlm = M.MaskedLM(*M._load_hf(str(path), "embedded"))
    assert mlm.topk(["a red house"], 3)[0].ids.shape == (5, 3)

    def fail(*args, **kwargs):
        raise AssertionError("a cached MLM must not be retrained")

    monkeypatch.setattr(M, "train_tiny_mlm", fail)
    assert M.prepare_mlm(ctx, config=SMALL, corpus=CORPUS) == path
    monkeypatch.undo()
    again = M.train_tiny_mlm(CORPUS, tmp_path / "again", SMALL, Context(progress=False))
    assert again["losses"] == stats["losses"]  # deterministic by seed


def test_cache_key_depends_on_the_config(tmp_path):
    ctx = Context(home=tmp_path)
    assert M.mlm_path(ctx) != M.mlm_path(ctx, SMALL)
    assert M.mlm_path(ctx) == M.mlm_path(ctx, M.TinyMLMConfig())


def test_the_committed_tokenizer_is_the_embedded_corpus_one():
    """The embedded MLM's vocabulary is committed (tokenizers' WordPiece trainer breaks ties in
    hash-map order, random per process). It must belong to today's corpus and recipe — a new
    world generator fails here until the file is rebuilt — and cover every caption word."""
    fixed = M.committed_tokenizer(M.TinyMLMConfig(), M._corpus_identity())
    assert fixed is not None, "run vladv.kit.mlm.write_committed_tokenizer() and commit the file"
    tok = M.build_tokenizer([], M.TinyMLMConfig().vocab_size, fixed)
    assert len(tok) == len(fixed["model"]["vocab"]) <= M.TinyMLMConfig().vocab_size
    corpus = M.embedded_corpus()
    ids = tok(corpus[::97], add_special_tokens=False)["input_ids"]
    assert ids and tok.unk_token_id not in {i for row in ids for i in row}
    other = M.TinyMLMConfig(vocab_size=999)
    assert M.committed_tokenizer(other, M._corpus_identity()) is None  # another recipe trains


def test_the_embedded_mlm_uses_the_committed_tokenizer(tmp_path, monkeypatch):
    seen = {}
    real = M.train_tiny_mlm

    def spy(corpus, out_dir, config, ctx, tokenizer=None):
        seen["tokenizer"] = tokenizer
        return real(corpus[:512], out_dir, config, ctx, tokenizer=tokenizer)

    monkeypatch.setattr(M, "train_tiny_mlm", spy)
    ctx = Context(progress=False, home=tmp_path / "home")
    path = M.prepare_mlm(ctx, config=M.TinyMLMConfig(steps=2, batch_size=8))
    assert seen["tokenizer"] == json.loads(M.COMMITTED_TOKENIZER.read_text())["tokenizer"]
    assert json.loads((path / "training.json").read_text())["tokenizer"] == "committed"
    vocab = json.loads((path / "tokenizer.json").read_text())["model"]["vocab"]
    assert vocab == seen["tokenizer"]["model"]["vocab"]
    # a custom corpus trains its own
    M.prepare_mlm(ctx, config=SMALL, corpus=CORPUS)
    assert seen["tokenizer"] is None

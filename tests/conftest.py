"""Test isolation: a private VLADV_HOME per session, no hub access, a fresh plugin registry."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests use tiny tensors: one thread avoids oversubscription on small shared CPUs.
torch.set_num_threads(1)
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _vladv_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("vladv_home")
    old = os.environ.get("VLADV_HOME")
    os.environ["VLADV_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("VLADV_HOME", None)
    else:
        os.environ["VLADV_HOME"] = old


@pytest.fixture
def tiny():
    """Register the tiny backbone and dataset of vladv.testing for one test."""
    from vladv.testing import registered_plugin, tiny_plugin

    with registered_plugin(tiny_plugin) as registry:
        yield registry


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory):
    """A random one-layer BERT masked LM over the tiny world's words, saved to a folder (the
    ``mlm`` option of sga, co-attack and bert-attack); no download, no pretraining."""
    from transformers import BertConfig, BertForMaskedLM

    import vladv_plugins.bert_attack  # noqa: F401  (an import regression fails, never skips)
    from vladv.testing import COLORS, PLACES, THINGS
    from vladv_plugins.mlm import build_tokenizer

    corpus = [
        f"a {c} {t} {p} a {u} number {i}"
        for i in range(8)
        for c in COLORS
        for t in THINGS
        for p in PLACES
        for u in THINGS[:2]
    ]
    tokenizer = build_tokenizer(corpus, vocab_size=120)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    folder = tmp_path_factory.mktemp("tiny_mlm")
    BertForMaskedLM(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)

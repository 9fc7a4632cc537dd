"""The ``textattack`` plugin: importable without TextAttack; with it (the extra's environment),
its recipes and augmenters run offline against retrieval and respect their budgets."""

from __future__ import annotations

import contextlib
import importlib.util

import pytest
import torch

from vladv.budget import words_changed
from vladv.data import pair_loader
from vladv.errors import VladvError
from vladv.testing import TinyBackbone, registered_plugin, tiny_dataset, tiny_plugin
from vladv.types import Context
from vladv_plugins import bert_attack as B
from vladv_plugins import textattack_plugin as P
from vladv_plugins.mlm import save_random_mlm

HAS_TA = importlib.util.find_spec("textattack") is not None
needs_ta = pytest.mark.skipif(
    not HAS_TA,
    reason="TextAttack is not installed (the textattack "
    "extra lives in a second environment: docs/attacks.md#installing-the-extra)",
)


@pytest.fixture(scope="module")
def mlm_path(tmp_path_factory):
    return str(
        save_random_mlm(
            list(tiny_dataset().captions), tmp_path_factory.mktemp("mlm"), vocab_size=200
        )
    )


@pytest.fixture(scope="module")
def batch():
    [b] = list(pair_loader(tiny_dataset(), 8))
    return b


def _run(batch, seed: int = 0, **opts):
    attack = P.TextAttackAttack(P.TextAttackOptions(**opts), Context(progress=False))
    return attack.perturb(TinyBackbone().eval(), batch, torch.Generator().manual_seed(seed)).texts


# -- without TextAttack ------------------------------------------------------------------------
def _with_plugin():
    """The plugin registered (through its entry point once installed, else inline)."""
    from vladv.plugins import get_registry

    names = set(get_registry().specs("attack"))
    return contextlib.nullcontext() if "textattack" in names else registered_plugin(P)


def test_plugin_registers_an_attack_and_an_augmenter():
    import tomllib
    from pathlib import Path

    from vladv.plugins import get_registry

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["vladv"]["textattack"] == P.__name__
    assert "textattack" in pyproject["project"]["optional-dependencies"]
    with _with_plugin():
        assert get_registry().get("attack", "textattack").name == "textattack"
        assert get_registry().get("augmenter", "textattack").name == "textattack"


@pytest.mark.skipif(HAS_TA, reason="TextAttack is installed")
def test_without_textattack_the_error_is_one_line_with_the_install_recipe(batch, mlm_path):
    with pytest.raises(VladvError) as err:
        _run(batch, mlm=mlm_path)
    msg = str(err.value)
    assert "\n" not in msg and "textattack extra" in msg and "constraints-textattack.txt" in msg


@pytest.mark.skipif(HAS_TA, reason="TextAttack is installed")
def test_pretrain_skips_the_plugin_without_textattack():
    ctx = Context(progress=False)
    P._prepare(P.TextAttackOptions(), ctx)  # `vladv pretrain` prepares every plugin: no error
    P._prepare_augmenter(P.TextAttackAugmenterOptions(), ctx)


def test_retrieval_values_follow_both_rule_sets():
    sims = torch.tensor([[0.9, 0.1], [0.2, 0.5]])
    paired = torch.tensor([0, 0])
    score, ok = P.retrieval_values(sims, paired, "sga", 10.0)
    assert torch.allclose(score, torch.tensor([-0.9, -0.2])) and ok.tolist() == [False, True]
    score, _ = P.retrieval_values(sims, paired, "textattack", 10.0)
    assert torch.allclose(score, 1 - (10 * sims).softmax(-1)[:, 0])


def test_vladv_search_early_stop_skips_and_stops(mlm_path, batch):
    mlm = B.get_mlm(mlm_path, Context())
    texts = list(batch.texts)

    def score(candidates, owner):  # more changed words score higher; success: a change, or even
        changed = torch.tensor(
            [
                float(words_changed(texts[o], c))
                for c, o in zip(candidates, owner.tolist(), strict=True)
            ]
        )
        return changed, (changed >= 1) | (owner % 2 == 0)

    search = B.WordSubstitutionSearch(mlm, k=8, max_words=3, max_rounds=0)
    free = [words_changed(a, b) for a, b in zip(texts, search.run(texts, score), strict=True)]
    stop = [
        words_changed(a, b)
        for a, b in zip(texts, search.run(texts, score, early_stop=True), strict=True)
    ]
    assert max(free) == 3  # SGA's rules spend the budget
    assert all(n == 0 for n in stop[::2])  # skipped: already "successful"
    assert all(n == 1 for n in stop[1::2])  # stopped at the first successful substitution
    backbone = TinyBackbone().eval()
    with pytest.raises(ValueError, match="early_stop"):
        search.run(
            texts,
            B.ImageGuidedScore(
                backbone, backbone.encode_image(batch.images)[batch.txt2img].detach()
            ),
            early_stop=True,
        )


def test_retrieval_score_returns_values_and_success(batch):
    backbone = TinyBackbone().eval()
    with torch.no_grad():
        image_emb = backbone.encode_image(batch.images)
    score = P.RetrievalScore(backbone, image_emb, batch.txt2img, "sga")
    values, ok = score(list(batch.texts), torch.arange(len(batch.texts)))
    assert values.shape == ok.shape == (len(batch.texts),) and score.encoded == len(batch.texts)


# -- with TextAttack ---------------------------------------------------------------------------
@needs_ta
@pytest.mark.parametrize("recipe", ["bert-attack", "pwws", "deepwordbug", "pruthi"])
@pytest.mark.parametrize("rules", ["textattack", "sga"])
def test_offline_recipes_respect_the_budget_and_are_deterministic(batch, mlm_path, recipe, rules):
    if recipe == "pwws":
        pytest.importorskip("nltk")
        from vladv_plugins.eda import load_wordnet

        try:
            load_wordnet()
        except VladvError:
            pytest.skip("WordNet not installed (apt-get install wordnet-base)")
    out = _run(batch, recipe=recipe, rules=rules, mlm=mlm_path, max_words=2)
    assert len(out) == len(batch.texts)
    assert max(words_changed(a, b) for a, b in zip(batch.texts, out, strict=True)) <= 2
    assert any(a != b for a, b in zip(batch.texts, out, strict=True))
    assert out == _run(batch, recipe=recipe, rules=rules, mlm=mlm_path, max_words=2)


@needs_ta
def test_custom_composition_and_sga_rules_do_not_stop_early(batch, mlm_path):
    out = _run(
        batch,
        recipe="custom",
        transformation="WordSwapQWERTY",
        constraints="RepeatModification, StopwordModification, LevenshteinEditDistance(5)",
        search="BeamSearch(beam_width=2)",
        rules="sga",
        max_words=2,
    )
    changed = [words_changed(a, b) for a, b in zip(batch.texts, out, strict=True)]
    assert max(changed) <= 2 and changed.count(2) > 0  # no early stop: the budget gets used
    out = _run(
        batch,
        recipe="bert-attack",
        mlm=mlm_path,
        transformation="WordSwapMaskedLM(method='bae')",
        max_words=1,
    )
    assert max(words_changed(a, b) for a, b in zip(batch.texts, out, strict=True)) <= 1


@needs_ta
def test_query_budget_limits_the_search(batch, mlm_path):
    free = _run(batch, recipe="bert-attack", rules="sga", mlm=mlm_path)
    tight = _run(batch, recipe="bert-attack", rules="sga", mlm=mlm_path, query_budget=1)
    assert tight == list(batch.texts) != free  # one query: the clean caption only


@needs_ta
@pytest.mark.parametrize(
    "recipe,expr",
    [("textfooler", ""), ("BERTAttackLi2020", ""), ("custom", "UniversalSentenceEncoder")],
)
def test_recipes_that_need_a_download_fail_in_one_line(batch, recipe, expr):
    opts = {"transformation": "WordSwapQWERTY", "constraints": expr} if expr else {}
    with pytest.raises(VladvError) as err:
        _run(batch, recipe=recipe, **opts)
    assert "\n" not in str(err.value) and "download" in str(err.value)


@needs_ta
def test_bad_components_fail_in_one_line(batch):
    for opts in (
        {"transformation": "NoSuchSwap"},
        {
            "transformation": "WordSwapQWERTY(",
        },
        {"transformation": "WordSwapQWERTY(random_one=len)"},
        {"recipe": "nope"},
    ):
        with pytest.raises(VladvError) as err:
            _run(batch, **{"recipe": "custom", **opts})
        assert "\n" not in str(err.value)


@needs_ta
def test_run_records_measured_budget(mlm_path):
    from vladv.experiment import run

    with registered_plugin(tiny_plugin), _with_plugin():
        [rec] = run(
            output=False,
            backbone="tiny",
            dataset="tiny",
            attack="textattack",
            attack_options={"mlm": mlm_path, "rules": "sga"},
            progress=False,
        )
    assert rec["metrics"]["budget"]["max_words_changed"] <= 1


@needs_ta
def test_augmenter_pools_are_deterministic_and_mix_with_eda():
    from vladv.pools import build_text_pool
    from vladv_plugins.eda import EDA, EdaOptions, load_wordnet

    try:
        load_wordnet()
    except VladvError:
        pytest.skip("WordNet not installed (apt-get install wordnet-base)")
    ds = tiny_dataset(4, split="train")
    ctx = Context(progress=False)
    ta_aug = P.TextAttackAugmenter(P.TextAttackAugmenterOptions(seed=3), ctx)
    first = ta_aug.generate(ds)
    assert first == ta_aug.generate(ds) and all(first)
    pools = build_text_pool([EDA(EdaOptions(seed=3), ctx), ta_aug], ds)
    for i, pool in enumerate(pools):
        gt = {ds.captions[t] for t in ds.img2txt[i]}
        assert pool and not gt & set(pool)
    with pytest.raises(VladvError, match="download"):
        P.TextAttackAugmenter(
            P.TextAttackAugmenterOptions(augmenter="EmbeddingAugmenter"), ctx
        ).make()

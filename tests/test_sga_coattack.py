"""SGA and Co-Attack: orchestration (with a recording fake text search), budgets, determinism,
one adversarial image per image, and end to end through the runner with a tiny offline MLM."""

from __future__ import annotations

import types

import pytest
import torch

from vladv.budget import text_budget
from vladv.data import pair_loader
from vladv.experiment import run
from vladv.testing import TinyBackbone, registered_plugin, tiny_dataset, tiny_plugin
from vladv.types import Context
from vladv_plugins.co_attack import CoAttack, CoAttackOptions, co_attack_loss
from vladv_plugins.sga import SGA, SGAOptions, bicubic_resize, scale_views

TOL = 1e-6
EPS = 4 / 255


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread (several threads spin against each other on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def batch():
    return next(iter(pair_loader(tiny_dataset(3, captions_per_image=2), 3)))


@pytest.fixture
def model():
    return TinyBackbone().eval()


def _image_rows(model, monkeypatch) -> list[int]:
    """Record the batch size of every image-tower forward."""
    rows: list[int] = []
    original = model.image_features

    def recording(pixels):
        rows.append(pixels.shape[0])
        return original(pixels)

    monkeypatch.setattr(model, "image_features", recording)
    return rows


# ----------------------------------------------------------------------------------------------
# A recording stand-in for the kit's word-substitution search (its contract, not its search)
# ----------------------------------------------------------------------------------------------
class FakeSearch:
    calls: list[tuple[list[str], object]] = []

    def __init__(self, mlm, *, k=10, max_words=1, reference_compat=False):
        self.mlm = mlm

    def run(self, texts, score):
        FakeSearch.calls.append((list(texts), score))
        n = len(FakeSearch.calls)
        return [" ".join(t.split()[:-1] + [f"w{n}"]) for t in texts]


@pytest.fixture
def fake_text(monkeypatch):
    from vladv.kit import words

    def get_mlm(name, ctx):  # a first use may *train* the embedded MLM: grad must be on
        assert torch.is_grad_enabled()
        return types.SimpleNamespace(name=name)

    monkeypatch.setattr(words, "WordSubstitutionSearch", FakeSearch)
    monkeypatch.setattr(words, "get_mlm", get_mlm)
    monkeypatch.setattr(
        words,
        "image_guided_score",
        lambda backbone, guidance, ctx=None, cache=None: ("image", guidance.clone()),
    )
    monkeypatch.setattr(words, "kl_score", lambda backbone, emb, ctx=None: ("kl", emb.clone()))
    FakeSearch.calls = []
    return FakeSearch.calls


def test_sga_follows_the_reference_order(model, batch, fake_text, monkeypatch):
    attack = SGA(SGAOptions(eps=EPS, steps=3), Context())
    encoded: list[list[str]] = []
    original = model.encode_text
    monkeypatch.setattr(
        model,
        "encode_text",
        lambda texts, **kw: (encoded.append(list(texts)), original(texts, **kw))[1],
    )
    out = attack.perturb(model, batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean = model.encode_image(batch.images)
        adv = model.encode_image(out.images)
    (t1_in, s1), (t2_in, s2) = fake_text
    assert t1_in == batch.texts and t2_in == batch.texts  # both attacks on CLEAN texts
    assert s1[0] == "image" and torch.allclose(s1[1], clean[batch.txt2img])
    assert torch.allclose(s2[1], adv[batch.txt2img], atol=1e-6)  # guided by the adversarial image
    t1 = [" ".join(t.split()[:-1] + ["w1"]) for t in batch.texts]
    assert encoded == [t1]  # PGD guided by T¹, embedded once
    assert out.texts == [" ".join(t.split()[:-1] + ["w2"]) for t in batch.texts]  # T¹ discarded
    assert attack.threat_model.max_words == 1 and attack.threat_model.norm == "linf"


def test_co_attack_order_and_objective(model, batch, fake_text):
    attack = CoAttack(CoAttackOptions(eps=EPS), Context())
    assert attack.step_size == pytest.approx(1.25 * EPS / 10)
    out = attack.perturb(model, batch, torch.Generator().manual_seed(0))
    [(texts, score)] = fake_text  # one image-independent search
    assert texts == batch.texts and score[0] == "kl"
    with torch.no_grad():
        assert torch.allclose(score[1], model.encode_text(batch.texts))
    assert out.texts == [" ".join(t.split()[:-1] + ["w1"]) for t in batch.texts]
    assert float((out.images - batch.images).abs().max()) <= EPS + TOL


# ----------------------------------------------------------------------------------------------
# Image side (no text search needed: max_words=0)
# ----------------------------------------------------------------------------------------------
def test_scale_views_shapes_noise_and_gradient():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    views = scale_views((0.5, 0.75, 1.25, 1.5), 0.05)
    assert len(views) == 5 and views[0](x, None) is x
    a = torch.cat([v(x, torch.Generator().manual_seed(3)) for v in views])
    b = torch.cat([v(x, torch.Generator().manual_seed(3)) for v in views])
    assert a.shape == (10, 3, 16, 16) and torch.equal(a, b)
    (grad,) = torch.autograd.grad(a.sum(), x)
    assert grad.abs().sum() > 0
    quiet = scale_views((0.5,), 0.0)[1](x, None).detach()
    assert float(quiet.min()) >= -0.2 and float(quiet.max()) <= 1.2  # bicubic may overshoot a bit


@pytest.mark.parametrize("size", [(8, 8), (12, 20), (24, 24), (5, 7)])
def test_bicubic_resize_matches_interpolate(size):
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    ref = torch.nn.functional.interpolate(x, size=size, mode="bicubic", align_corners=False)
    ours = bicubic_resize(x, size)
    assert ours.shape == ref.shape and float((ours - ref).detach().abs().max()) < 1e-5
    (g_ref,) = torch.autograd.grad((ref**2).sum(), x)
    (g_ours,) = torch.autograd.grad((ours**2).sum(), x)
    assert float((g_ours - g_ref).abs().max()) < 1e-4


@pytest.mark.parametrize(
    "cls,opts,clean_forwards,rows_per_step",
    [
        (SGA, SGAOptions(eps=EPS, steps=3, max_words=0), 0, 5),
        (CoAttack, CoAttackOptions(eps=EPS, steps=3, max_words=0), 1, 1),
    ],
)
def test_image_attacks_budget_determinism_and_unit(
    cls, opts, clean_forwards, rows_per_step, model, batch, monkeypatch
):
    rows = _image_rows(model, monkeypatch)
    attack = cls(opts, Context())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = attack.perturb(model, batch, torch.Generator().manual_seed(1))
    again = attack.perturb(model, batch, torch.Generator().manual_seed(1))
    other = attack.perturb(model, batch, torch.Generator().manual_seed(2))
    b = len(batch)
    assert torch.equal(out.images, again.images) and not torch.equal(out.images, other.images)
    assert float((out.images - batch.images).abs().max()) <= EPS + TOL
    assert 0 <= float(out.images.min()) and float(out.images.max()) <= 1
    assert out.texts == batch.texts
    # each image attacked once against its whole caption set: per step ONE batched forward of
    # all views (B rows for Co-Attack, (1 + 4 scales)·B for SGA); Co-Attack's clean embedding
    assert rows == 3 * ([b] * clean_forwards + [rows_per_step * b] * opts.steps)
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_co_attack_loss_matches_the_definition():
    torch.manual_seed(0)
    norm = torch.nn.functional.normalize
    adv, clean = norm(torch.randn(2, 4), dim=-1), norm(torch.randn(2, 4), dim=-1)
    txt, txt2img = norm(torch.randn(3, 4), dim=-1), torch.tensor([0, 1, 1])

    def kl(p, q):  # KL(softmax(p) || softmax(q))
        return float((p.softmax(-1) * (p.log_softmax(-1) - q.log_softmax(-1))).sum())

    expected = (
        kl(clean[0], adv[0])
        + 3 * kl(txt[0], adv[0])
        + kl(clean[1], adv[1])
        + 3 * (kl(txt[1], adv[1]) + kl(txt[2], adv[1])) / 2
    ) / 2
    assert abs(float(co_attack_loss(adv, clean, txt, txt2img, 3.0)) - expected) < 1e-6
    # the reference's unit: each image against its last caption only (image 1: caption 2)
    last = (
        kl(clean[0], adv[0])
        + 3 * kl(txt[0], adv[0])
        + kl(clean[1], adv[1])
        + 3 * kl(txt[2], adv[1])
    ) / 2
    got = co_attack_loss(adv, clean, txt, txt2img, 3.0, last_pair=True)
    assert abs(float(got) - last) < 1e-6 and abs(last - expected) > 1e-3


def test_co_attack_moves_away_from_clean_and_adversarial_text(model, batch):
    attack = CoAttack(CoAttackOptions(eps=8 / 255, steps=5, max_words=0), Context())
    out = attack.perturb(model, batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean, txt = model.encode_image(batch.images), model.encode_text(batch.texts)
        before = co_attack_loss(clean, clean, txt, batch.txt2img, 3.0)
        after = co_attack_loss(model.encode_image(out.images), clean, txt, batch.txt2img, 3.0)
    assert after > before


# ----------------------------------------------------------------------------------------------
# End to end with a real (tiny, random) masked LM
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,cls,opts",
    [
        ("sga", SGA, SGAOptions),
        ("co-attack", CoAttack, CoAttackOptions),
    ],
)
def test_end_to_end_with_a_tiny_mlm(name, cls, opts, tiny_mlm, model, batch):
    attack = cls(opts(eps=EPS, steps=2, mlm=tiny_mlm), Context())
    out = attack.perturb(model, batch, torch.Generator().manual_seed(0))
    again = cls(opts(eps=EPS, steps=2, mlm=tiny_mlm), Context()).perturb(
        model, batch, torch.Generator().manual_seed(0)
    )
    assert out.texts == again.texts and torch.equal(out.images, again.images)
    words = text_budget(batch.texts, out.texts)
    assert int(words.max()) <= 1 and int(words.sum()) > 0
    assert float((out.images - batch.images).abs().max()) <= EPS + TOL
    compat = cls(opts(eps=EPS, steps=1, mlm=tiny_mlm, reference_compat=True), Context())
    out = compat.perturb(model, batch, torch.Generator().manual_seed(0))
    assert int(text_budget(batch.texts, out.texts).max()) <= 1
    with registered_plugin(tiny_plugin):
        [rec] = run(
            output=False,
            backbone="tiny",
            dataset="tiny",
            attack=name,
            progress=False,
            dataset_options={"n_images": 4, "captions_per_image": 3},
            attack_options={"steps": "2", "mlm": tiny_mlm, "eps": "2/255"},
        )
    budget = rec["metrics"]["budget"]
    assert budget["max_linf"] <= 2 / 255 + TOL and budget["max_words_changed"] <= 1
    assert 0 <= budget["min_pixel"] and budget["max_pixel"] <= 1


def _sga_with_and_without_cache(model, batch, mlm, monkeypatch, **options):
    """SGA's outputs and backbone text calls (batch sizes) with its text cache, then without."""
    import vladv_plugins.sga as S

    def attack(cached: bool):
        calls: list[int] = []
        original = model.encode_text
        monkeypatch.setattr(
            model,
            "encode_text",
            lambda texts, **kw: (calls.append(len(texts)), original(texts, **kw))[1],
        )
        if not cached:
            monkeypatch.setattr(S, "text_cache", lambda: None)
        out = SGA(SGAOptions(eps=EPS, steps=2, mlm=mlm, **options), Context()).perturb(
            model, batch, torch.Generator().manual_seed(0)
        )
        monkeypatch.undo()
        return out, calls

    return attack(True), attack(False)


def test_sga_reuses_the_repeated_importance_embeddings_exactly(tiny_mlm, model, batch, monkeypatch):
    """Step 6 repeats step 2's word-importance call (the same masked clean captions): it is
    answered from step 2's embeddings, and the outputs equal a run that recomputes them."""
    (out, calls), (ref, ref_calls) = _sga_with_and_without_cache(
        model, batch, tiny_mlm, monkeypatch
    )
    assert model.text_rows_independent_from() is None  # whole repeated calls only
    assert out.texts == ref.texts and torch.equal(out.images, ref.images)
    assert len(calls) < len(ref_calls) and sum(calls) < sum(ref_calls)


def test_sga_reuses_each_candidate_embedding_exactly_on_the_embedded_clip(tiny_mlm, monkeypatch):
    """On the embedded CLIP's CPU row blocks a text's embedding does not depend on its batch:
    step 6 embeds only the candidates step 2 has not (filled up to a block when few), and the
    adversarial texts and images equal those of a run that embeds every call in full."""
    import open_clip

    from vladv.kit.words import TextEmbeddingCache
    from vladv_plugins import clip_pretrain as C
    from vladv_plugins.clip_backbone import ClipBackbone

    C.register_tiny_config()
    torch.manual_seed(0)
    clip = ClipBackbone(
        open_clip.create_model(C.DEFAULT_MODEL).eval(), C.get_tokenizer(C.DEFAULT_MODEL)
    )
    data = tiny_dataset(12, captions_per_image=3, image_size=clip.image_size)
    big = next(iter(pair_loader(data, 12)))
    with torch.no_grad():
        assert clip.text_rows_independent_from() == 65
    with torch.enable_grad():
        assert clip.text_rows_independent_from() is None
    (out, calls), (ref, ref_calls) = _sga_with_and_without_cache(
        clip, big, tiny_mlm, monkeypatch, k=4
    )
    assert out.texts == ref.texts and torch.equal(out.images, ref.images)
    # more saved than the repeated importance call: step 6's candidates come from step 2's
    assert sum(ref_calls) - sum(calls) > max(ref_calls)

    # the cache itself: overlapping calls, a small leftover, duplicates — bit-identical rows
    from vladv.kit.words import image_guided_score

    texts = [f"{w} planes near {n} houses" for w in ("red", "two", "snowy", "a") for n in range(40)]
    guide = torch.nn.functional.normalize(torch.randn(len(texts), 128), dim=-1)
    plain, cached = image_guided_score(clip, guide), image_guided_score(clip, guide)
    cached.cache = cache = TextEmbeddingCache()
    for part in (texts[:100], texts[20:150], texts[::-1] + texts[:3], texts[:30]):
        assert torch.equal(cached.embed(part), plain.embed(part))
    assert cache.computed == len(texts) + 30 and cache.reused > 0  # the 30-text call: whole

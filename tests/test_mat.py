"""MAT: both towers train, inner attacks stay in budget, 1:N pools and image augmentation."""

import copy

import pytest
import torch

from vladv.budget import words_changed
from vladv.options import resolve_options
from vladv.testing import COLORS, PLACES, THINGS, TinyBackbone, tiny_dataset
from vladv.types import Augmenter, Context
from vladv_plugins import mat as M
from vladv_plugins.mlm import save_random_mlm

CORPUS = [
    f"a {c} {t} {p} a {u} number {i}"
    for i in range(8)
    for c in COLORS
    for t in THINGS
    for p in PLACES
    for u in THINGS[:2]
]


@pytest.fixture(scope="module")
def mlm_path(tmp_path_factory):
    return str(save_random_mlm(CORPUS, tmp_path_factory.mktemp("mlm"), vocab_size=200))


class Shout(Augmenter):
    """A text augmenter: one extra caption per image."""

    modality = "text"

    def texts_for(self, dataset):
        return [[dataset.captions[ids[0]] + " indeed"] for ids in dataset.img2txt]


class Flip(Augmenter):
    modality = "image"

    def transform_images(self, images, generator):
        return images.flip(-1)


def _fit(mlm_path, monkeypatch, augmenters=(), **given):
    seen = {"pgd": [], "text": []}
    real_pgd, real_run = M.projected_gradient, M.WordSubstitutionSearch.run

    def pgd_spy(objective, images, **kw):
        out = real_pgd(objective, images, **kw)
        seen["pgd"].append((images.clone(), out.clone(), kw["eps"]))
        return out

    def run_spy(self, texts, score, **kw):
        out = real_run(self, texts, score, **kw)
        seen["text"].append((list(texts), list(out), self.max_words))
        return out

    monkeypatch.setattr(M, "projected_gradient", pgd_spy)
    monkeypatch.setattr(M.WordSubstitutionSearch, "run", run_spy)
    losses = []
    real_train = M.train
    monkeypatch.setattr(M, "train", lambda *a, **k: losses.extend(real_train(*a, **k)) or losses)
    opts = resolve_options(
        "defense 'mat'",
        M.MATOptions,
        {"steps": "10", "batch_size": "8", "lr": "1e-2", "warmup": "0", "mlm": mlm_path, **given},
    )
    model = TinyBackbone(seed=0)
    before = copy.deepcopy(model.state_dict())
    M.MAT(opts, Context(progress=False)).fit(
        model, tiny_dataset(8, seed=4, split="train"), list(augmenters)
    )
    return before, model, losses, seen


def test_mat_trains_both_towers_and_inner_attacks_respect_budgets(mlm_path, monkeypatch):
    before, model, losses, seen = _fit(mlm_path, monkeypatch)
    changed = {k for k in before if not torch.equal(before[k], model.state_dict()[k])}
    assert any(k.startswith("visual.") for k in changed)
    assert any(k.startswith("text.") for k in changed) and "log_scale" in changed
    assert sum(losses[-3:]) < sum(losses[:3])
    assert len(seen["pgd"]) == 10 and len(seen["text"]) == 10
    for clean, adv, eps in seen["pgd"]:
        assert (adv - clean).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    changes = [
        words_changed(a, b)
        for texts, outs, _ in seen["text"]
        for a, b in zip(texts, outs, strict=True)
    ]
    assert max(changes) <= 1 and sum(changes) > 0


@pytest.mark.parametrize("towers,prefix", [("image", "visual."), ("text", "text.")])
def test_mat_trains_only_the_chosen_tower(mlm_path, monkeypatch, towers, prefix):
    before, model, _, _ = _fit(mlm_path, monkeypatch, towers=towers, loss="split")
    changed = {k for k in before if not torch.equal(before[k], model.state_dict()[k])}
    assert changed and all(k.startswith(prefix) or k == "log_scale" for k in changed)


def test_pools_hold_ground_truth_and_augmented_texts():
    ds = tiny_dataset(4)
    pools = M.text_pools(ds, [Shout(None, Context()), Flip(None, Context())])
    for ids, pool in zip(ds.img2txt, pools, strict=True):
        gt = [ds.captions[t] for t in ids]
        assert pool[: len(gt)] == gt and pool[len(gt) :] == [gt[0] + " indeed"]


def test_image_augmenter_and_text_pools_feed_training(mlm_path, monkeypatch):
    _, _, _, seen = _fit(
        mlm_path,
        monkeypatch,
        augmenters=[Shout(None, Context()), Flip(None, Context())],
        image_aug_prob="1",
        text_words="1",
    )
    ds = tiny_dataset(8, seed=4, split="train")
    flipped = ds.images.flip(-1)
    clean_inputs = torch.cat([c for c, _, _ in seen["pgd"]])
    assert all(any(torch.allclose(x, f) for f in flipped) for x in clean_inputs[:8])
    assert any(t.endswith(" indeed") for texts, _, _ in seen["text"] for t in texts)

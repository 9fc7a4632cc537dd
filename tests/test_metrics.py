import random

import pytest
import torch
import torch.nn.functional as F

from vladv.metrics import (
    asr_block,
    asr_conditional,
    metrics_from_ranks,
    retrieval_metrics,
    retrieval_ranks,
)


def _brute(S, img2txt, txt2img):
    n_img, n_txt = len(S), len(S[0])
    tr = [
        min(sorted(range(n_txt), key=lambda j: (-S[i][j], j)).index(t) for t in img2txt[i])
        for i in range(n_img)
    ]
    ir = [sorted(range(n_img), key=lambda i: (-S[i][t], i)).index(txt2img[t]) for t in range(n_txt)]
    return tr, ir


@pytest.mark.parametrize("seed,quantize", [(0, False), (1, False), (2, True), (3, True)])
@pytest.mark.parametrize("shared", [True, False])
def test_ranks_match_brute_force(seed, quantize, shared, monkeypatch):
    """Both ways to the scores: one matrix shared by TR and IR, and per-direction chunks (the
    way of galleries too large to hold it)."""
    import vladv.metrics

    if not shared:
        monkeypatch.setattr(vladv.metrics, "SHARED_SCORES_MAX", 0)
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    caps = [rng.choice([5, 6]) for _ in range(23)]
    img2txt, t = [], 0
    for c in caps:
        img2txt.append(list(range(t, t + c)))
        t += c
    txt2img = [i for i, ids in enumerate(img2txt) for _ in ids]
    img = F.normalize(torch.randn(len(caps), 3, generator=g), dim=-1)
    txt = F.normalize(torch.randn(t, 3, generator=g), dim=-1)
    if quantize:  # many exact ties: the tie rule decides
        img, txt = torch.round(img * 2) / 2, torch.round(txt * 2) / 2
    tr, ir = retrieval_ranks(img, txt, img2txt, txt2img, chunk=5)
    btr, bir = _brute((img @ txt.T).tolist(), img2txt, txt2img)
    assert tr.tolist() == btr and ir.tolist() == bir


def _pairwise_ranks(queries, gallery, targets):
    """The definition, literally: min over targets t ≥ 0 of #(s > s_t) + #(s == s_t, j < t)."""
    scores = queries @ gallery.T
    idx = torch.arange(gallery.shape[0])
    s_t = scores.gather(1, targets.clamp(min=0))
    better = (scores[:, None, :] > s_t[:, :, None]) | (
        (scores[:, None, :] == s_t[:, :, None]) & (idx[None, None, :] < targets[:, :, None])
    )
    return better.sum(-1).masked_fill(targets < 0, torch.iinfo(torch.long).max).min(1).values


@pytest.mark.parametrize("seed", range(6))
def test_ranks_follow_the_definition_with_padding_duplicates_and_non_finite_scores(seed):
    from vladv.metrics import _ranks_of_targets

    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    for _ in range(40):
        nq, ng, m = rng.randint(1, 12), rng.randint(1, 15), rng.randint(1, 4)
        q = torch.randn(nq, 2, generator=g).round()
        gal = torch.randn(ng, 2, generator=g).round()
        for t, v in ((q, float("nan")), (gal, float("inf")), (q, float("-inf"))):
            if rng.random() < 0.3:
                t[rng.randrange(len(t)), rng.randrange(2)] = v
        targets = torch.randint(-1, ng, (nq, m), generator=g)
        if rng.random() < 0.3:
            targets[:, 1:] = targets[:, :1]  # one caption listed twice
        assert torch.equal(
            _ranks_of_targets(q, gal, targets, rng.choice([1, 4, 256])),
            _pairwise_ranks(q, gal, targets),
        )


def test_perfect_and_reversed_retrieval():
    img = torch.eye(4)
    txt = torch.eye(4).repeat_interleave(2, 0)
    img2txt = [[0, 1], [2, 3], [4, 5], [6, 7]]
    txt2img = [0, 0, 1, 1, 2, 2, 3, 3]
    m = retrieval_metrics(img, txt, img2txt, txt2img)
    assert m["tr_r1"] == 100 and m["ir_r1"] == 100 and m["rsum"] == 600
    m = retrieval_metrics(img, -txt, img2txt, txt2img)
    assert m["tr_r1"] == 0 and m["ir_r1"] == 0


def test_metrics_from_ranks_percentages():
    m = metrics_from_ranks(torch.tensor([0, 1, 5, 20]), torch.tensor([0, 9, 10]))
    assert m["tr_r1"] == 25 and m["tr_r5"] == 50 and m["tr_r10"] == 75
    assert m["ir_r1"] == pytest.approx(100 / 3, abs=1e-4) and m["ir_r10"] == pytest.approx(
        200 / 3, abs=1e-4
    )


def test_asr_conventions():
    clean = torch.tensor([0, 0, 0, 3])
    adv = torch.tensor([0, 2, 5, 0])
    assert asr_conditional(clean, adv, 1) == pytest.approx(200 / 3)  # 2 of 3 correct ones broken
    assert asr_conditional(torch.tensor([4, 5]), torch.tensor([0, 0])) is None
    block = asr_block(
        (clean, clean), (adv, adv), {"tr_r1": 75.0, "ir_r1": 75.0}, {"tr_r1": 50.0, "ir_r1": 25.0}
    )
    assert block["tr_r1_delta"] == 25.0 and block["ir_r1_delta"] == 50.0
    assert block["tr_r1_conditional"] == pytest.approx(200 / 3)

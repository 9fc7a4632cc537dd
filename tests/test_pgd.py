"""The shared projected-gradient primitive and the ``pgd`` attack plugin (tiny, CPU, fast)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vladv.data import pair_loader
from vladv.errors import OptionError
from vladv.experiment import run
from vladv.testing import TinyBackbone, registered_plugin, tiny_dataset, tiny_plugin
from vladv.types import Context
from vladv_plugins.pgd import (
    PGD,
    PGDOptions,
    caption_set_loss,
    caption_sums,
    project,
    projected_gradient,
    random_delta,
)

TOL = 1e-6


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread (several threads spin against each other on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(seed: int, b: int, size: int, saturate: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, size, size, generator=g)
    if saturate:  # pixels exactly on the box edges
        x = torch.where(x < 0.3, torch.zeros_like(x), torch.where(x > 0.7, torch.ones_like(x), x))
    return x


def _norms(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _objective(model: TinyBackbone, target: torch.Tensor):
    def objective(x: torch.Tensor) -> torch.Tensor:
        emb = model.encode_image(x)
        return -(emb * target.repeat(emb.shape[0] // target.shape[0], 1)).sum()

    return objective


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    b=st.integers(1, 3),
    size=st.sampled_from([8, 16]),
    saturate=st.booleans(),
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.floats(0.0, 0.5),
    step=st.floats(0.0, 0.3),
    steps=st.integers(0, 3),
    start=st.sampled_from(["uniform", "positive", "none"]),
    momentum=st.sampled_from([0.0, 0.9]),
    train_mode=st.booleans(),
    n_views=st.integers(0, 2),
)
def test_projected_gradient_properties(
    seed, b, size, saturate, norm, eps, step, steps, start, momentum, train_mode, n_views
):
    model = TinyBackbone(image_size=16).train(train_mode)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _images(seed, b, size, saturate)
    g = torch.Generator().manual_seed(seed)
    target = torch.nn.functional.normalize(torch.randn(b, 16, generator=g), dim=-1)
    noisy = lambda z, g: (z + 0.01 * torch.randn(z.shape, generator=g)).clamp(0, 1)  # noqa: E731
    views = [lambda z, g: z, noisy][:n_views] or None
    kwargs = dict(
        eps=eps,
        step_size=step,
        steps=steps,
        norm=norm,
        random_start=start,
        momentum=momentum,
        views=views,
    )
    out = projected_gradient(
        _objective(model, target), x, generator=torch.Generator().manual_seed(seed), **kwargs
    )
    again = projected_gradient(
        _objective(model, target), x, generator=torch.Generator().manual_seed(seed), **kwargs
    )
    assert out.shape == x.shape and out.dtype == x.dtype and not out.requires_grad
    assert float(_norms(out - x, norm).max()) <= eps + TOL
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(out, again)
    assert model.training == train_mode
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_views_are_one_batched_forward():
    model = TinyBackbone().eval()
    x = _images(0, 4, 16, False)
    seen = []

    def objective(z):
        seen.append(z.shape[0])
        return model.encode_image(z).sum()

    views = [lambda z, g: z, lambda z, g: z.flip(-1), lambda z, g: 1 - z]
    projected_gradient(objective, x, eps=0.1, step_size=0.05, steps=3, views=views)
    assert seen == [12, 12, 12]


def test_random_starts_and_projection():
    g = torch.Generator().manual_seed(0)
    shape = (64, 3, 4, 4)
    d = random_delta(shape, 0.1, "linf", "positive", g, torch.device("cpu"))
    assert float(d.min()) >= 0 and float(d.max()) <= 0.1
    d = random_delta(shape, 0.1, "linf", "uniform", g, torch.device("cpu"))
    assert float(d.min()) < 0 < float(d.max()) and float(d.abs().max()) <= 0.1
    d = random_delta(shape, 0.5, "l2", "uniform", g, torch.device("cpu"))
    norms = d.flatten(1).norm(dim=1)
    assert float(norms.max()) <= 0.5 + TOL and float(norms.min()) > 0.3  # uniform in a 48-d ball
    assert not random_delta(shape, 0.5, "l2", "none", g, torch.device("cpu")).any()
    x = torch.full((1, 3, 2, 2), 0.5)
    far = project(x + 1.0, x, 0.2, "l2")
    assert abs(float((far - x).flatten(1).norm()) - 0.2) < 1e-6


def test_momentum_and_invalid_arguments():
    x = _images(1, 2, 8, False)
    obj = lambda z: (z * torch.linspace(-1, 1, z.numel()).view_as(z)).sum()  # noqa: E731
    plain = projected_gradient(obj, x, eps=0.1, step_size=0.01, steps=5, random_start="none")
    mom = projected_gradient(
        obj, x, eps=0.1, step_size=0.01, steps=5, random_start="none", momentum=0.9
    )
    assert torch.allclose(plain, mom)  # constant gradient: momentum keeps the direction
    with pytest.raises(ValueError):
        projected_gradient(obj, x, eps=0.1, step_size=0.01, steps=1, norm="l1")
    with pytest.raises(ValueError):
        projected_gradient(obj, x, eps=0.1, step_size=0.01, steps=1, random_start="gauss")


def test_works_under_no_grad_and_autocast():
    model = TinyBackbone().eval()
    x = _images(2, 2, 16, False)
    target = torch.nn.functional.normalize(torch.randn(2, 16), dim=-1)
    ctx = Context(precision="bf16")
    with torch.no_grad():
        out = projected_gradient(
            _objective(model, target),
            x,
            eps=4 / 255,
            step_size=1 / 255,
            steps=2,
            autocast=ctx.autocast,
        )
    assert out.dtype == torch.float32
    assert float((out - x).abs().max()) <= 4 / 255 + TOL


def test_caption_set_loss_matches_definition():
    img = torch.nn.functional.normalize(torch.randn(2 * 3, 5), dim=-1)  # 2 views × 3 images
    txt = torch.nn.functional.normalize(torch.randn(7, 5), dim=-1)
    txt2img = torch.tensor([0, 0, 1, 1, 1, 2, 2])
    expected = 0.0
    for v in range(2):
        per_image = [
            sum(float(img[v * 3 + i] @ txt[j]) for j in range(7) if txt2img[j] == i)
            for i in range(3)
        ]
        expected += -sum(per_image) / 3
    got = caption_set_loss(img, caption_sums(txt, txt2img, 3))
    assert abs(float(got) - expected) < 1e-5


def _sim_to_own(model, images, batch):
    with torch.no_grad():
        t = model.encode_text(batch.texts)
        return float((model.encode_image(images)[batch.txt2img] * t).sum(-1).mean())


def test_pgd_attack_lowers_similarity_to_own_captions():
    model = TinyBackbone().eval()
    batch = next(iter(pair_loader(tiny_dataset(4), 4)))
    attack = PGD(PGDOptions(eps=8 / 255, step_size=2 / 255, steps=5), Context())
    assert attack.threat_model.norm == "linf" and attack.threat_model.eps == pytest.approx(8 / 255)
    out = attack.perturb(model, batch, torch.Generator().manual_seed(0))
    assert out.texts == batch.texts
    assert float((out.images - batch.images).abs().max()) <= 8 / 255 + TOL
    assert _sim_to_own(model, out.images, batch) < _sim_to_own(model, batch.images, batch)
    l2 = PGD(PGDOptions(eps=0.5, step_size=0.2, steps=3, norm="l2"), Context())
    out = l2.perturb(model, batch, torch.Generator().manual_seed(0))
    assert float((out.images - batch.images).flatten(1).norm(dim=1).max()) <= 0.5 + TOL
    assert _sim_to_own(model, out.images, batch) < _sim_to_own(model, batch.images, batch)


def test_pgd_through_the_runner():
    with registered_plugin(tiny_plugin):
        [rec] = run(
            output=False,
            backbone="tiny",
            dataset="tiny",
            attack="pgd",
            progress=False,
            attack_options={"eps": "4/255", "step_size": "1/255", "steps": "3"},
        )
        with pytest.raises(OptionError, match="pgd"):
            run(
                output=False,
                backbone="tiny",
                dataset="tiny",
                attack="pgd",
                progress=False,
                attack_options={"norm": "l1"},
            )
    m = rec["metrics"]
    assert m["adversarial"]["tr_r1"] <= m["clean"]["tr_r1"]
    assert m["adversarial"]["ir_r1"] <= m["clean"]["ir_r1"]
    assert m["budget"]["max_linf"] <= 4 / 255 + TOL
    assert 0.0 <= m["budget"]["min_pixel"] and m["budget"]["max_pixel"] <= 1.0

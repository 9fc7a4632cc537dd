import pytest
import torch

from vladv.testing import TinyBackbone, tiny_dataset
from vladv.training import (
    PairSampler,
    Schedule,
    TrainingOptions,
    contrastive_loss,
    step_generator,
    train,
)
from vladv.types import Context


def _loss(model):
    def fn(batch):
        return contrastive_loss(
            model.encode_image(batch.images), model.encode_text(batch.texts), model.logit_scale
        )

    return fn


def test_sampler_is_deterministic_and_never_repeats_an_image_in_a_batch():
    ds = tiny_dataset(n_images=10)
    pools = [[f"text {i} {j}" for j in range(3)] for i in range(10)]
    a = list(PairSampler(ds, 4, seed=1, pools=pools).batches(7, 0, torch.device("cpu")))
    b = list(PairSampler(ds, 4, seed=1, pools=pools).batches(7, 3, torch.device("cpu")))
    for x, y in zip(a[3:], b, strict=True):
        assert x.step == y.step and x.texts == y.texts and torch.equal(x.images, y.images)
    for batch in a:
        ids = batch.image_ids.tolist()
        assert len(set(ids)) == len(ids)
        assert all(t.startswith(f"text {i} ") for i, t in zip(ids, batch.texts, strict=True))
    c = list(PairSampler(ds, 4, seed=2, pools=pools).batches(7, 0, torch.device("cpu")))
    assert any(x.image_ids.tolist() != y.image_ids.tolist() for x, y in zip(a, c, strict=True))


def test_schedule_warmup_then_cosine():
    s = Schedule(steps=10, lr=1.0, warmup=2)
    assert s.factor(0) == 0.5 and s.factor(1) == 1.0 and s.factor(2) == 1.0
    assert s.factor(6) == pytest.approx(0.5) and s.factor(10) == pytest.approx(0.0)


def test_training_lowers_the_loss_and_trains_only_given_parameters():
    model = TinyBackbone(seed=0)
    ds = tiny_dataset(n_images=8, seed=3, split="train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = train(
        model,
        list(model.image_tower.parameters()),
        PairSampler(ds, 8, seed=0),
        _loss(model),
        Schedule(steps=30, lr=1e-2, warmup=0),
        Context(progress=False),
        workdir=None,
    )
    assert sum(losses[-5:]) < sum(losses[:5])
    after = model.state_dict()
    assert all(
        not torch.equal(before[k], after[k])
        for k in before
        if k.startswith("visual.") and k.endswith("weight")
    )
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("visual."))
    assert all(p.requires_grad for p in model.parameters())  # flags restored
    assert not model.training


class Stop(Exception):
    pass


def test_interrupted_training_resumes_from_checkpoint(tmp_path):
    ds = tiny_dataset(n_images=8, seed=3, split="train")
    sched = Schedule(steps=6, lr=1e-2, checkpoint_every=2)
    ref = TinyBackbone(seed=0)
    train(
        ref,
        list(ref.parameters()),
        PairSampler(ds, 4, seed=0),
        _loss(ref),
        sched,
        Context(progress=False),
        tmp_path / "ref",
    )

    model = TinyBackbone(seed=0)

    def stop_at_3(step, loss):
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        train(
            model,
            list(model.parameters()),
            PairSampler(ds, 4, seed=0),
            _loss(model),
            sched,
            Context(progress=False),
            tmp_path / "run",
            on_step=stop_at_3,
        )
    resumed = TinyBackbone(seed=0)  # a fresh process would start from scratch weights
    steps_run = train(
        resumed,
        list(resumed.parameters()),
        PairSampler(ds, 4, seed=0),
        _loss(resumed),
        sched,
        Context(progress=False),
        tmp_path / "run",
    )
    assert len(steps_run) == 4  # resumed from the checkpoint at step 2
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=1e-6)


def test_training_options_give_a_schedule():
    s = TrainingOptions(steps=5, warmup=20).schedule()
    assert s.steps == 5 and s.warmup == 5


def test_step_generator_is_keyed_by_seed_and_step():
    a = torch.rand(3, generator=step_generator(0, 5, "pgd"))
    assert torch.equal(a, torch.rand(3, generator=step_generator(0, 5, "pgd")))
    assert not torch.equal(a, torch.rand(3, generator=step_generator(0, 6, "pgd")))

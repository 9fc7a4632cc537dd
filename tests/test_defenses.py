import copy
import importlib
import re

import pytest
import torch

from vladv.experiment import run
from vladv.options import resolve_options
from vladv.testing import TinyBackbone, tiny_dataset
from vladv.types import Context
from vladv_plugins.fare import FARE, FAREOptions
from vladv_plugins.tecoa import TeCoA, TeCoAOptions

TRAIN = {"steps": "12", "batch_size": "8", "lr": "1e-2", "warmup": "0"}


def _fit(defense_cls, options_cls, given, monkeypatch, augmenters=()):
    """Fit a defense on the tiny model; return (weights before, fitted model, step losses)."""
    model = TinyBackbone(seed=0)
    before = copy.deepcopy(model.state_dict())
    opts = resolve_options("defense", options_cls, {**TRAIN, **given})
    losses = []
    module = importlib.import_module(defense_cls.__module__)
    real = module.train
    monkeypatch.setattr(module, "train", lambda *a, **k: losses.extend(real(*a, **k)) or losses)
    fitted = defense_cls(opts, Context(progress=False)).fit(
        model, tiny_dataset(8, seed=4, split="train"), list(augmenters)
    )
    return before, fitted, losses


def _changed(before, after):
    return {k for k in before if not torch.equal(before[k], after.state_dict()[k])}


@pytest.mark.parametrize(
    "cls,opts,extra", [(TeCoA, TeCoAOptions, {}), (FARE, FAREOptions, {"pgd_steps": "3"})]
)
def test_unimodal_defenses_train_only_the_image_tower(cls, opts, extra, monkeypatch):
    before, model, losses = _fit(cls, opts, extra, monkeypatch)
    changed = _changed(before, model)
    assert changed and all(k.startswith("visual.") for k in changed)
    assert sum(losses[-4:]) < sum(losses[:4])


def _tiny_tecoa(**defense_options: str) -> dict:
    """``run`` arguments: a 2-step TeCoA on the tiny model, in memory, no progress bars."""
    return dict(
        backbone="tiny",
        dataset="tiny",
        defense="tecoa",
        progress=False,
        output=False,
        defense_options={"steps": "2", "batch_size": "4", **defense_options},
    )


def test_defense_is_cached_by_configuration(tiny, tmp_path, capsys):
    kw = _tiny_tecoa()
    first = run(**kw)[0]
    out = capsys.readouterr()
    assert "training defense" in out.out + out.err
    second = run(**kw)[0]
    out = capsys.readouterr()
    assert "using cached tecoa checkpoint" in out.out + out.err
    assert first["metrics"]["clean"] == second["metrics"]["clean"]
    assert first["config"]["defense"]["options"]["steps"] == 2


def test_a_defense_another_process_is_training_is_waited_for_not_trained_twice(
    tiny, tmp_path, capsys
):
    """Two runs that need the same defended model build it once: the second waits on the
    build lock and loads what the first saved (here a thread plays the other process)."""
    import threading
    import time

    from vladv.cache import build_lock

    kw = _tiny_tecoa(lr="3e-3")  # another model than the test above's
    first = run(**kw)[0]
    out = capsys.readouterr()
    folder = re.search(r"cached as (tecoa-[0-9a-f]+)", out.out + out.err).group(1)
    final = Context().cache_dir("defenses", folder) / "model.safetensors"
    saved = final.read_bytes()
    final.unlink()
    held = threading.Event()

    def other_process():
        with build_lock(final):
            held.set()
            time.sleep(0.5)
            final.write_bytes(saved)

    thread = threading.Thread(target=other_process)
    thread.start()
    held.wait()
    second = run(**kw)[0]
    thread.join()
    out = capsys.readouterr()
    text = out.out + out.err
    assert "waiting for another process that is building model.safetensors" in text
    assert "using cached tecoa checkpoint" in text and "training defense" not in text
    assert first["metrics"]["clean"] == second["metrics"]["clean"]


def test_build_lock_is_exclusive_and_says_why_it_waits(tmp_path):
    import threading
    import time

    from vladv.cache import build_lock

    target, order, said = tmp_path / "sub" / "model.bin", [], []
    held = threading.Event()

    def first():
        with build_lock(target):
            held.set()
            time.sleep(0.3)
            order.append("first")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    with build_lock(target, said.append):
        order.append("second")
    thread.join()
    assert order == ["first", "second"]
    assert said == ["waiting for another process that is building model.bin"]
    with build_lock(target, said.append):  # free again: no waiting, nothing said
        pass
    assert len(said) == 1

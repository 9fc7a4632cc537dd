import pytest
import torch

import vladv
import vladv.evaluation as evaluation
from vladv.errors import OptionError
from vladv.experiment import run
from vladv.testing import noise_attack_spec, registered_plugin


class DropFirstWord(vladv.Attack):
    modality = "text"

    @property
    def threat_model(self):
        return vladv.ThreatModel("text", max_words=1)

    def perturb(self, backbone, batch, generator):
        return vladv.AttackOutput(batch.images, [" ".join(t.split()[1:]) for t in batch.texts])


class AttackPlugin:
    @vladv.hookimpl
    def vladv_attacks(self):
        yield noise_attack_spec("sign-noise", "random sign noise", mode="sign")
        yield vladv.AttackSpec(
            name="drop-word", summary="drops the first word", factory=DropFirstWord, modality="text"
        )


@pytest.fixture
def attacks(tiny):
    with registered_plugin(AttackPlugin()):
        yield


def test_several_attacks_share_one_clean_gallery(attacks, monkeypatch, tmp_path):
    calls = []
    real = evaluation.encode_clean
    monkeypatch.setattr(
        "vladv.experiment.encode_clean", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    recs = run(
        backbone="tiny",
        dataset="tiny",
        attack=["sign-noise", "drop-word"],
        progress=False,
        output=tmp_path,
        dataset_options={"n_images": 12},
    )
    assert len(calls) == 1 and len(recs) == 2
    assert len({r["run_id"] for r in recs}) == 2
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == sorted(
        [r["run_id"] for r in recs] + ["experiment"]
    )
    noise, drop = recs
    assert noise["metrics"]["budget"]["max_linf"] == pytest.approx(8 / 255, abs=1e-6)
    assert noise["metrics"]["budget"]["max_words_changed"] == 0
    assert drop["metrics"]["budget"]["max_linf"] == 0
    assert drop["metrics"]["budget"]["max_words_changed"] == 1
    assert noise["metrics"]["clean"] == drop["metrics"]["clean"]
    assert noise["config"]["attack"]["threat_model"]["eps_255"] == pytest.approx(8)


def test_same_seed_same_result_and_seed_changes_noise(attacks):
    kw = dict(
        backbone="tiny",
        dataset="tiny",
        attack="sign-noise",
        progress=False,
        output=False,
        dataset_options={"n_images": 16},
        attack_options={"eps": "32/255", "mode": "uniform"},
    )  # continuous noise
    a, b = run(**kw, seed=1)[0], run(**kw, seed=1)[0]
    c = run(**kw, seed=2)[0]
    assert a["metrics"] == b["metrics"] and a["run_id"] == b["run_id"]
    assert c["run_id"] != a["run_id"] and c["config"]["seed"] == 2
    assert c["metrics"]["budget"]["max_l2"] != a["metrics"]["budget"]["max_l2"]  # other noise


def test_option_routing_across_attacks(attacks):
    recs = run(
        output=False,
        backbone="tiny",
        dataset="tiny",
        attack=["sign-noise", "drop-word"],
        attack_options={"sign-noise.eps": "1/255"},
        progress=False,
    )
    assert recs[0]["config"]["attack"]["options"]["eps"] == pytest.approx(1 / 255)
    with pytest.raises(OptionError, match="no attack in this run .* has an option 'steps'"):
        run(
            output=False,
            backbone="tiny",
            dataset="tiny",
            attack=["sign-noise", "drop-word"],
            attack_options={"steps": "3"},
            progress=False,
        )
    with pytest.raises(OptionError, match="names attack 'pgd', which is not part of this run"):
        run(
            output=False,
            backbone="tiny",
            dataset="tiny",
            attack=["sign-noise"],
            attack_options={"pgd.eps": "3"},
            progress=False,
        )


def test_resume_skips_finished_cells_without_building_anything(attacks, tmp_path, monkeypatch):
    first = run(
        backbone="tiny", dataset="tiny", attack="drop-word", progress=False, output=tmp_path
    )
    monkeypatch.setattr(
        "vladv.experiment.encode_clean", lambda *a, **k: pytest.fail("finished cell recomputed")
    )
    again = run(
        backbone="tiny", dataset="tiny", attack="drop-word", progress=False, output=tmp_path
    )
    assert again == first


def test_record_carries_full_configuration(attacks):
    [rec] = run(
        output=False,
        backbone="tiny",
        dataset="tiny",
        attack="sign-noise",
        seed=5,
        progress=False,
        backbone_options={"embed_dim": "8"},
    )
    cfg = rec["config"]
    assert cfg["seed"] == 5 and cfg["backbone"]["options"] == {
        "image_size": 16,
        "embed_dim": 8,
        "seed": 0,
    }
    assert cfg["attack"]["options"]["eps"] == pytest.approx(8 / 255)
    assert rec["versions"]["torch"] == torch.__version__.split("+")[0]
    assert rec["versions"]["plugins"]["attack"]["plugin"].startswith("inline-")
    assert rec["data"]["images"] == 8 and rec["data"]["texts"] == 40
    assert set(rec["metrics"]) == {"clean", "adversarial", "asr", "budget"}

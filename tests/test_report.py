import csv
import json

import pytest
from typer.testing import CliRunner

import vladv
from vladv.cli import app
from vladv.reports import aggregate, mark_changes
from vladv.testing import noise_attack_spec, registered_plugin


class Plugin:
    @vladv.hookimpl
    def vladv_attacks(self):
        yield noise_attack_spec("noise", "noise + first word", mode="sign", first_word="zebra")


@pytest.fixture
def grid_dir(tiny, tmp_path):
    toml = tmp_path / "exp.toml"
    toml.write_text("""
[experiment]
name = "tiny-grid"
backbones = ["tiny"]
datasets = ["tiny"]
attacks = ["none", "noise"]
seeds = [0, 1]
save_examples = 2

[options.attack]
"noise.eps" = ["4/255", "16/255"]

[options.dataset.tiny]
n_images = 6
""")
    with registered_plugin(Plugin()):
        res = CliRunner().invoke(
            app,
            ["run", "-c", str(toml), "--output", str(tmp_path / "out"), "-q"],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
    return tmp_path / "out"


def test_report_writes_table_csv_plots_and_gallery(grid_dir):
    res = CliRunner().invoke(
        app, ["report", str(grid_dir)], catch_exceptions=False, env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    rep = grid_dir / "report"
    rows = list(csv.DictReader((rep / "summary.csv").open()))
    assert len(rows) == 3  # clean + two ε values, each over two seeds
    by_attack = {r["attack_label"]: r for r in rows}
    assert set(by_attack) == {"none", "noise ε=4/255", "noise ε=16/255"}
    recs = [json.loads(p.read_text()) for p in grid_dir.glob("*.json") if p.stem != "experiment"]
    strong = [
        r
        for r in recs
        if r["config"]["attack"]["threat_model"]
        and r["config"]["attack"]["threat_model"]["eps_255"] == 16
    ]
    mean = sum(r["metrics"]["adversarial"]["tr_r1"] for r in strong) / 2
    assert float(by_attack["noise ε=16/255"]["adversarial_tr_r1_mean"]) == pytest.approx(mean)
    assert by_attack["noise ε=16/255"]["seeds"] == "0 1"
    assert len(list(csv.DictReader((rep / "records.csv").open()))) == 6
    for png in ("robust_vs_eps.png", "defenses_attacks.png"):
        data = (rep / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    page = (rep / "gallery.html").read_text()
    assert page.count("<mark>zebra</mark>") >= 8 and "perturbation" in page
    img = page.split("src='")[1].split("'")[0]
    assert (rep / img).exists()
    assert "noise ε=16/255" in res.output and "seeds" in res.output
    md = (rep / "summary.md").read_text().splitlines()
    header = next(line for line in md if line.startswith("| defense | clean"))
    assert header == "| defense | clean | noise ε=4/255 | noise ε=16/255 |"  # ε ascending
    [none_row] = [line for line in md if line.startswith("| none | ") and "±" in line][:1]
    strong_tr = by_attack["noise ε=16/255"]
    cell = (
        f"{float(strong_tr['adversarial_tr_r1_mean']):.1f}±"
        f"{float(strong_tr['adversarial_tr_r1_std']):.1f} / "
    )
    assert none_row.split(" | ")[3].startswith(cell)
    # both ASR conventions: SGA's conditional one, then Co-Attack's clean − adversarial R@1
    delta = md[md.index(next(line for line in md if line.startswith("Co-Attack's ASR@1"))) :]
    delta_row = next(line for line in delta if line.startswith("| none | "))
    gap = strong_tr["asr_tr_r1_delta_mean"]
    assert delta_row.split(" | ")[2].startswith(f"{float(gap):.1f}")


def test_rows_follow_the_grid_order_of_the_manifest():
    def rec(defense, attack):
        return {
            "run_id": defense + attack,
            "config": {
                "backbone": {"name": "b"},
                "dataset": {"name": "d"},
                "defense": {"name": defense},
                "augmenters": [],
                "seed": 0,
                "attack": {"name": attack, "options": {}, "threat_model": None},
            },
            "metrics": {"clean": {"tr_r1": 1.0}, "adversarial": {"tr_r1": 0.5}},
        }

    recs = [rec(d, a) for d in ("fare", "mat", "none") for a in ("sga", "pgd")]
    plain = [(r["defense"], r["attack"]) for r in aggregate(recs)]
    assert plain[:2] == [("none", "pgd"), ("none", "sga")]  # without a grid: none first
    grid = {"defenses": ["none", "mat", "fare"], "attacks": ["sga", "pgd"]}
    ordered = [(r["defense"], r["attack"]) for r in aggregate(recs, grid)]
    assert ordered == [(d, a) for d in ("none", "mat", "fare") for a in ("sga", "pgd")]


def test_aggregate_is_a_pure_function_of_records(grid_dir):
    from vladv.results import load_records

    recs = load_records(grid_dir)
    assert aggregate(recs) == aggregate(list(reversed(recs)))


def test_mark_changes():
    assert mark_changes("a red house", "a blue house") == "a <mark>blue</mark> house"
    assert mark_changes("a house", "a house") == "a house"


def test_python_api_report(grid_dir):
    out = vladv.report(grid_dir)
    assert out["records"] == 6 and set(out["files"]) >= {"summary_csv", "gallery"}

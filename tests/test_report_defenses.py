"""The report's defense differences (paired per seed), from synthetic records."""

from __future__ import annotations

import csv
import json

import pytest

from vladv.report_defenses import beyond_spread, defense_differences, defense_differences_html
from vladv.reports import grid_order, report

ORDER = grid_order({"defenses": ["none", "tecoa", "mat"]})

# robust TR@1 per (defense, seed) under SGA; IR is TR / 2; clean R@1 per defense
ROBUST = {
    "none": (1.0, 2.0, 3.0),
    "tecoa": (2.0, 4.0, 6.0),  # − none: +1, +2, +3 → +2.0±1.0 (within twice the spread)
    "mat": (7.0, 9.2, 10.8),  # − tecoa: +5, +5.2, +4.8 → +5.0±0.2 (beyond it)
}
CLEAN = {"none": 60.0, "tecoa": 50.0, "mat": 45.0}


def _record(defense: str, seed: int, attack: str = "sga", source: dict | None = None) -> dict:
    clean = dict.fromkeys(("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "rsum"), 0.0)
    clean.update(tr_r1=CLEAN[defense] + seed, ir_r1=CLEAN[defense])
    adv = dict(clean, tr_r1=ROBUST[defense][seed], ir_r1=ROBUST[defense][seed] / 2)
    cfg = {
        "backbone": {"name": "clip", "options": {"model": "vladv-tiny-aerial"}},
        "defense": {"name": defense, "options": {} if defense == "none" else {"steps": 5}},
        "augmenters": [],
        "dataset": {"name": "synthetic-aerial", "options": {}},
        "attack": {"name": attack, "options": {}, "threat_model": {"eps": 2 / 255}},
        "seed": seed,
        "source": source,
    }
    return {
        "schema_version": 6,
        "run_id": f"{defense}-{attack}-{seed}-{bool(source)}",
        "created": "2026-11-30T00:00:00+00:00",
        "config": cfg,
        "metrics": {"clean": clean, "adversarial": adv, "asr": {}, "budget": {}},
    }


@pytest.fixture
def records():
    recs = [_record(d, s) for d in ROBUST for s in range(3)]
    # a transfer record (another source) must not enter the white-box comparison
    src = {"backbone": {"name": "clip", "options": {"model": "other"}}, "defense": {"name": "none"}}
    recs.append(
        dict(
            _record("mat", 0),
            run_id="transfer",
            config={**_record("mat", 0)["config"], "source": src},
        )
    )
    recs[-1]["metrics"]["adversarial"]["tr_r1"] = 99.0
    return recs


def test_paired_differences_mean_std_and_spread(records):
    rows = defense_differences(records, ORDER)
    cell = {(r["defense"], r["other"], r["column"]): r for r in rows}
    assert set(cell) == {
        (a, b, c)
        for a, b in (("tecoa", "none"), ("mat", "none"), ("mat", "tecoa"))
        for c in ("clean", "sga ε=2/255")
    }
    up = cell[("mat", "tecoa", "sga ε=2/255")]
    assert up["seeds"] == [0, 1, 2]
    assert up["tr_mean"] == pytest.approx(5.0) and up["tr_std"] == pytest.approx(0.2)
    assert up["ir_mean"] == pytest.approx(2.5) and up["ir_std"] == pytest.approx(0.1)
    assert beyond_spread(up["tr_mean"], up["tr_std"], 3)
    small = cell[("tecoa", "none", "sga ε=2/255")]
    assert small["tr_mean"] == pytest.approx(2.0) and small["tr_std"] == pytest.approx(1.0)
    assert not beyond_spread(small["tr_mean"], small["tr_std"], 3)
    assert not beyond_spread(5.0, 0.0, 1)  # one seed has no spread to be beyond
    clean = cell[("mat", "none", "clean")]
    assert clean["tr_mean"] == pytest.approx(-15.0) and clean["tr_std"] == pytest.approx(0.0)


def test_only_seeds_both_defenses_have_are_paired(records):
    rows = defense_differences([r for r in records if r["run_id"] != "mat-sga-2-False"], ORDER)
    up = next(
        r
        for r in rows
        if (r["defense"], r["other"], r["column"]) == ("mat", "tecoa", "sga ε=2/255")
    )
    assert up["seeds"] == [0, 1] and up["tr_mean"] == pytest.approx(5.1)


def test_report_writes_the_table_and_csv(tmp_path, records):
    folder = tmp_path / "runs"
    folder.mkdir()
    for r in records:
        (folder / f"{r['run_id']}.json").write_text(json.dumps(r))
    out = report(folder)
    md = open(out["files"]["summary_md"]).read()
    section = md[md.index("## Defense differences") :]
    # no experiment manifest: defenses in name order after none
    assert "| tecoa − mat | +5.0±0.0* / +5.0±0.0* | -5.0±0.2* / -2.5±0.1* |" in section
    assert "| tecoa − none | -10.0±0.0* / -10.0±0.0* | +2.0±1.0 / +1.0±0.5 |" in section
    rows = list(csv.DictReader(open(out["files"]["differences_csv"])))
    assert len(rows) == 6 and {r["seeds"] for r in rows} == {"0 1 2"}
    page = open(out["files"]["index"]).read()
    assert "<h2>Defense differences</h2>" in page and "<td>tecoa − mat</td>" in page


def test_html_tables_escape_the_records_text(records):
    rows = defense_differences(records, ORDER)
    for r in rows:
        r["backbone"] = "<script>alert(1)</script>"
    page = defense_differences_html(rows)
    assert "<script>" not in page and "&lt;script&gt;" in page

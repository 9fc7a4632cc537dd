"""The report's source × target matrix, from synthetic records."""

from __future__ import annotations

import csv
import json

import pytest

from vladv.reports import report

MODELS = {
    "aerial": {"model": "vladv-tiny-aerial", "pretrain_seed": 0},
    "align": {"model": "vladv-tiny-align", "pretrain_seed": 0},
    "seed1": {"model": "vladv-tiny-aerial", "pretrain_seed": 1},
}


def _part(model: str, defense: str = "none") -> dict:
    return {
        "backbone": {"name": "clip", "options": MODELS[model]},
        "defense": {"name": defense, "options": {"steps": 5} if defense != "none" else {}},
        "augmenters": [],
    }


def _record(
    target: str, source: str | None, attack: str, seed: int, asr: float, defense: str = "none"
) -> dict:
    metrics = dict.fromkeys(("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "rsum"), 50.0)
    adv = {**metrics, "tr_r1": 50.0 * (1 - asr / 100), "ir_r1": 50.0 * (1 - asr / 200)}
    cfg = {
        **_part(target, defense),
        "dataset": {"name": "synthetic-aerial", "options": {}},
        "attack": {
            "name": attack,
            "options": {},
            "threat_model": {"modality": "image", "norm": "linf", "eps": 2 / 255, "max_words": 0},
        },
        "seed": seed,
        "source": _part(source) if source else None,
    }
    rid = f"{target}-{defense}-{source}-{attack}-{seed}"
    return {
        "schema_version": 4,
        "run_id": rid,
        "created": "2026-11-30T00:00:00+00:00",
        "config": cfg,
        "metrics": {
            "clean": metrics,
            "adversarial": adv,
            "asr": {
                "tr_r1_conditional": asr,
                "ir_r1_conditional": asr / 2,
                "tr_r1_delta": 50.0 - adv["tr_r1"],
                "ir_r1_delta": 50.0 - adv["ir_r1"],
            },
            "budget": {"max_linf": 2 / 255, "max_words_changed": 0},
        },
    }


@pytest.fixture
def folder(tmp_path):
    """PGD and SGA, 3 models × 3 sources (white-box on the diagonal), a MAT target, 2 seeds."""
    out = tmp_path / "runs"
    out.mkdir()
    for attack, strength in (("pgd", 1.0), ("sga", 1.5)):
        for seed in (0, 1):
            for target in MODELS:
                for source in MODELS:
                    asr = (60.0 if source == target else 20.0) * strength + seed
                    rec = _record(
                        target, None if source == target else source, attack, seed, min(asr, 100.0)
                    )
                    (out / f"{rec['run_id']}.json").write_text(json.dumps(rec))
            for source in (None, "aerial"):
                rec = _record("aerial", source, attack, seed, 10.0 + seed, defense="mat")
                (out / f"{rec['run_id']}.json").write_text(json.dumps(rec))
    return out


def test_report_draws_the_source_by_target_matrix(folder):
    result = report(folder)
    files = result["files"]
    pngs = {k: v for k, v in files.items() if v.endswith(".png") and "transfer_" in v}
    assert len(pngs) == 2  # one heatmap per attack
    md = (folder / "report" / "summary.md").read_text()
    assert "## Transfer: source (rows) × target (columns)" in md
    matrices = md[md.index("## Transfer: source") : md.index("## Transfer summary")]
    assert matrices.count("conditional ASR@1") == 2 and matrices.count("Co-Attack's ASR@1") == 2
    header = (
        "| source \\ target | clip | clip(model=vladv-tiny-align) | clip(pretrain_seed=1) | "
        "clip/mat |"
    )
    assert header in md
    pgd = md[md.index("### pgd ε=2/255") : md.index("### sga")]
    # white-box diagonal (60 + seed → 60.5±0.7), transfer off the diagonal (20.5±0.7 / 10.2±0.4)
    row = next(
        line for line in pgd.splitlines() if line.startswith("| clip(model=vladv-tiny-align")
    )
    assert "| 20.5±0.7 / 10.2±0.4 | 60.5±0.7 / 30.2±0.4 | 20.5±0.7 / 10.2±0.4 |" in row
    assert row.endswith("| – / – |")  # no align-crafted examples against the MAT target
    first = next(line for line in pgd.splitlines() if line.startswith("| clip |"))
    assert first.endswith("| 10.5±0.7 / 5.2±0.4 |")
    rows = list(csv.DictReader((folder / "report" / "transfer.csv").open()))
    assert len(rows) == 2 * (9 + 2)
    assert {r["source"] for r in rows} >= {"clip(model=vladv-tiny-align)"}


def test_white_box_tables_keep_their_rows(folder):
    result = report(folder)
    white = [r for r in result["rows"] if r["source"] == "self"]
    assert len(white) == 2 * 4  # 3 undefended + 1 MAT model per attack
    assert all(r["seeds"] == [0, 1] for r in result["rows"])
    md = (folder / "report" / "summary.md").read_text()
    assert md.index("R@1, TR / IR") < md.index("## Transfer")
    html = (folder / "report" / "index.html").read_text()
    assert "transfer_pgd" in html and "source × target ASR@1" in html


def test_a_malformed_source_is_skipped_with_a_warning(folder):
    rec = _record("aerial", "align", "pgd", 5, 30.0)
    rec["config"]["source"] = {"backbone": "clip"}
    (folder / "bad.json").write_text(json.dumps(rec))
    result = report(folder)
    assert any("malformed config.source" in w for w in result["warnings"])


def test_the_summary_averages_each_setting_per_seed_then_over_seeds(folder):
    report(folder)
    md = (folder / "report" / "summary.md").read_text()
    summary = md[md.index("## Transfer summary") :]
    pgd = next(line for line in summary.splitlines() if line.startswith("| pgd"))
    # white-box on the 3 undefended models: 60 + seed; black-box between them (6 pairs): 20 +
    # seed; onto the MAT target (crafted on clip): 10 + seed; IR is half of TR in the fixture.
    assert "| 60.5±0.7 / 30.2±0.4 (3 pairs, seeds 0, 1) |" in pgd
    assert "| 20.5±0.7 / 10.2±0.4 (6 pairs, seeds 0, 1) |" in pgd
    assert pgd.endswith("| 10.5±0.7 / 5.2±0.4 (1 pair, seeds 0, 1) |")
    # paired per seed: SGA's black-box ASR is 30 + seed, PGD's 20 + seed: SGA − PGD is 10 in
    # every seed (no spread), half of it for IR
    sga = [line for line in summary.splitlines() if line.startswith("| sga")]
    assert sga[0].startswith("| sga ε=2/255 | 90.5±0.7 / 45.2±0.4 (3 pairs, seeds 0, 1) |")
    assert sga[1] == "| sga ε=2/255 | 10.0±0.0 / 5.0±0.0 | – |"


def test_the_summary_counts_only_pairs_every_seed_has(folder):
    (folder / "align-none-seed1-pgd-1.json").unlink()  # seed 1 lacks one black-box pair
    report(folder)
    md = (folder / "report" / "summary.md").read_text()
    pgd = next(
        line
        for line in md[md.index("## Transfer summary") :].splitlines()
        if line.startswith("| pgd")
    )
    assert "| 20.5±0.7 / 10.2±0.4 (5 pairs, seeds 0, 1) |" in pgd


def test_bar_plot_keeps_each_backbone_apart(tmp_path):
    """A folder holding several models (backbone options) plots one row of panels per model,
    each with its own values — not whichever model's row came last."""
    from vladv.reports import aggregate, bar_values, plot_defense_bars

    records = []
    for model, clean in (("aerial", 60.0), ("align", 30.0)):
        rec = _record(model, None, "pgd", 0, 50.0)
        rec["metrics"]["clean"]["tr_r1"] = clean
        records.append(rec)
    models, defenses, attacks, value = bar_values(aggregate(records))
    assert len(models) == 2 and defenses == ["none"] and attacks == ["clean", "pgd ε=2/255"]
    cleans = sorted(value[(m, "none", "clean")][0] for m in models)
    assert cleans == [30.0, 60.0]
    path = tmp_path / "bars.png"
    assert plot_defense_bars(aggregate(records), path) == path and path.stat().st_size > 0


def test_labels_leave_the_plugins_default_unsaid_however_many_models_differ():
    """The default model reads ``clip`` even when more of the folder's models were built with
    another value (here: more defenses on the generated-data CLIP than on the real-data one);
    an option the plugin does not declare falls back to the folder's most common value."""
    from vladv.report_transfer import model_labels

    records = []
    for data, defenses in (("real", ("none",)), ("generated", ("none", "tecoa", "mat"))):
        for defense in defenses:
            rec = _record("aerial", None, "pgd", 0, 50.0, defense=defense)
            opts = {**rec["config"]["backbone"]["options"], "pretrain_data": data}
            rec["config"]["backbone"]["options"] = {**opts, "undeclared": data == "generated"}
            rec["run_id"] += data
            records.append(rec)
    labels = {r["run_id"]: model_labels(records, defenses=False)[r["run_id"]][0] for r in records}
    real = [v for k, v in labels.items() if k.endswith("real")]
    generated = {v for k, v in labels.items() if k.endswith("generated")}
    assert real == ["clip(undeclared=False)"]
    assert generated == {"clip(pretrain_data=generated)"}
    for rec in records:  # a backbone plugin not installed here: the most common value
        rec["config"]["backbone"]["name"] = "not-installed"
    labels = model_labels(records, defenses=False)
    assert {labels[r["run_id"]][0] for r in records if r["run_id"].endswith("generated")} == {
        "not-installed"
    }


def test_models_that_differ_only_in_defense_or_augmenter_options_are_separate_rows(tmp_path):
    """A sweep over a defense option (or an augmenter option) gives one row per model, labelled
    with the option that tells them apart, its declared default unsaid; merged, the two models'
    records would be averaged as if they were two seeds."""
    from vladv.reports import aggregate

    records = []
    for steps, tr in ((2, 40.0), (10, 20.0)):  # MAT's default pgd_steps: 2
        rec = _record("aerial", None, "sga", 0, 50.0, defense="mat")
        rec["config"]["defense"]["options"] = {"pgd_steps": steps}
        rec["metrics"]["adversarial"]["tr_r1"] = tr
        rec["run_id"] += f"-steps{steps}"
        records.append(rec)
    for num, text_importance in ((5, "deletion"), (2, "deletion"), (5, "gradient")):
        rec = _record("aerial", None, "sga", 0, 50.0, defense="mat")
        rec["config"]["defense"]["options"] = {"text_importance": text_importance}
        rec["config"]["augmenters"] = [{"name": "caption", "options": {"num_captions": num}}]
        rec["run_id"] += f"-{num}-{text_importance}"
        records.append(rec)
    rows = {r["defense"]: r for r in aggregate(records)}
    assert set(rows) == {
        "mat",
        "mat(pgd_steps=10)",
        "mat+caption",
        "mat+caption(num_captions=2)",
        "mat(text_importance=gradient)+caption",
    }
    assert all(r["seeds"] == [0] for r in rows.values())
    assert rows["mat"]["adversarial_tr_r1_mean"] == 40.0
    assert rows["mat(pgd_steps=10)"]["adversarial_tr_r1_mean"] == 20.0
    grid = {"defenses": ["mat+caption", "mat"], "attacks": ["sga"]}  # options keep their place
    assert [r["defense"] for r in aggregate(records, grid)] == [
        "mat(text_importance=gradient)+caption",
        "mat+caption",
        "mat+caption(num_captions=2)",
        "mat",
        "mat(pgd_steps=10)",
    ]
    out = tmp_path / "runs"
    out.mkdir()
    for rec in records:
        (out / f"{rec['run_id']}.json").write_text(json.dumps(rec))
    report(out)
    for name in ("records.csv", "summary.csv"):
        with (out / "report" / name).open() as f:
            assert {r["defense"] for r in csv.DictReader(f)} == set(rows)


def test_summary_tables_mark_the_rows_with_fewer_seeds_than_the_table():
    """A table over seeds 0–2 whose MAT row has only two seeds says so on that row's cells."""
    from vladv.reports import aggregate, markdown_tables

    records = [_record("aerial", None, "sga", s, 50.0) for s in (0, 1, 2)]
    records += [_record("aerial", None, "sga", s, 20.0, defense="mat") for s in (0, 1)]
    text = markdown_tables(aggregate(records))
    assert "(seeds 0, 1, 2)" in text
    rows = [line for line in text.splitlines() if line.startswith(("| none", "| mat"))]
    assert rows and all("(n=2)" in r for r in rows if r.startswith("| mat"))
    assert not any("(n=" in r for r in rows if r.startswith("| none"))

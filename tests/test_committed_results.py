"""`vladv report` on the committed records of the synthetic-aerial experiments (docs/results/)."""

import csv
import json
import re
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

from vladv.budget import words_changed
from vladv.reports import report
from vladv.results import defense_label

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def _load(folder):
    return [json.loads(p.read_text()) for p in folder.glob("*.json") if p.stem != "experiment"]


def _label(rec):
    return defense_label(rec["config"])


@pytest.fixture(scope="module")
def grid_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grid") / "records"
    shutil.copytree(RESULTS / "records", folder)
    return folder, _load(folder), report(folder)


def test_the_table_is_the_mean_and_std_of_the_seeds(grid_report):
    _, records, out = grid_report
    assert {r["config"]["seed"] for r in records} == {0, 1, 2}
    cells = defaultdict(list)
    for rec in records:
        cells[(_label(rec), rec["config"]["attack"]["name"])].append(rec)
    assert len(cells) == 24 and all(len(v) == 3 for v in cells.values())
    rows = list(csv.DictReader(open(out["files"]["summary_csv"])))
    assert len(rows) == len(cells)
    for (defense, attack), recs in cells.items():
        [row] = [r for r in rows if r["defense"] == defense and r["attack"] == attack]
        assert row["seeds"] == "0 1 2"
        adv = [r["metrics"]["adversarial"]["tr_r1"] for r in recs]
        assert float(row["adversarial_tr_r1_mean"]) == pytest.approx(statistics.fmean(adv))
        assert float(row["adversarial_tr_r1_std"]) == pytest.approx(statistics.stdev(adv))
        clean = [r["metrics"]["clean"]["ir_r1"] for r in recs]
        assert float(row["clean_ir_r1_mean"]) == pytest.approx(statistics.fmean(clean))
    assert {"none", "tecoa", "fare", "mat", "mat+eda", "mat+caption"} == {
        r["defense"] for r in rows
    }
    png = Path(out["files"]["defenses_attacks"]).read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 20_000


def test_the_gallery_shows_the_committed_examples(grid_report):
    folder, records, out = grid_report
    with_examples = [r for r in records if r.get("examples") and (folder / r["examples"]).exists()]
    assert len(with_examples) == 12  # seed 1 of none, tecoa, mat
    page = Path(out["files"]["gallery"])
    text = page.read_text()
    assert text.count("<h2>") == len(with_examples)
    sources = re.findall(r"<img src='([^']+)'", text)
    assert len(sources) == 3 * sum(
        len(json.loads((folder / r["examples"]).read_text())["examples"]) for r in with_examples
    )
    assert all((page.parent / s).resolve().is_file() for s in sources)
    # text attacks changed at most one word per caption, and the page marks it
    for rec in with_examples:
        index = json.loads((folder / rec["examples"]).read_text())
        for ex in index["examples"]:
            for clean, adv in zip(ex["clean_texts"], ex["adv_texts"], strict=True):
                assert words_changed(clean, adv) <= (
                    rec["config"]["attack"]["threat_model"]["max_words"] or 0
                )
    assert "<mark>" in text
    titles = re.findall(r"<h2>([^<]*)</h2>", text)
    assert [t.split(" · ")[0] for t in titles] == ["none"] * 4 + ["tecoa"] * 4 + ["mat"] * 4
    assert [t.split(" · ")[1].split()[0] for t in titles[:4]] == [
        "pgd",
        "bert-attack",
        "co-attack",
        "sga",
    ]  # the grid's order


def test_the_eps_sweep_report_draws_one_line_per_defense(tmp_path):
    folder = tmp_path / "eps"
    shutil.copytree(RESULTS / "eps-records", folder)
    records = _load(folder)
    out = report(folder)
    rows = out["rows"]
    assert len(rows) == len(records) == 30
    by_defense = defaultdict(list)
    for r in rows:
        by_defense[r["defense"]].append((r["eps"], r["adversarial_tr_r1_mean"]))
    assert len(by_defense) == 6
    for points in by_defense.values():
        assert [round(e * 255, 1) for e, _ in sorted(points)] == [0.5, 1.0, 2.0, 4.0, 8.0]
        recalls = [v for _, v in sorted(points)]
        assert recalls[0] > recalls[-1]  # a larger ball never helps the model here
    png = Path(out["files"]["robust_vs_eps"]).read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 20_000


def _gen_results():
    """docs/gen_results.py, the script that writes results.md's blocks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_results", RESULTS.parent / "gen_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(tag: str) -> str:
    page = (RESULTS.parent / "results.md").read_text()
    return page.split(f"<!-- {tag} -->\n", 1)[1].split(f"\n<!-- /{tag} -->", 1)[0]


def _blocks_are_the_report(tmp_path, records, tag: str) -> list[dict]:
    """Assert that results.md's ``<tag>-summary`` and ``<tag>-differences`` blocks are `vladv
    report docs/results/<records>`'s summary (several folders: merged; a function: the folder it
    fills), verbatim; return the records."""
    gen = _gen_results()
    scratch = tmp_path / "records"
    folder = records(scratch) if callable(records) else gen.merged(records, scratch)
    summary = Path(report(folder)["files"]["summary_md"]).read_text()
    assert _block(f"{tag}-summary") == gen.section(summary, None, gen.DIFFERENCES)
    assert _block(f"{tag}-differences") == gen.section(summary, gen.DIFFERENCES)
    return _load(folder)


def test_world_v2_block_is_the_report_of_the_committed_v2_records(tmp_path):
    """docs/results.md's world-v2 tables and defense differences are `vladv report
    docs/results/v2-records`, verbatim."""
    records = _blocks_are_the_report(tmp_path, "v2-records", "v2")
    assert records and all(r["data"]["generator_version"] == 5 for r in records)
    assert all(r["data"]["options"]["test_domain"] == "real" for r in records)


def test_transfer_block_is_the_report_of_the_committed_transfer_records(tmp_path):
    """docs/results.md's transfer matrices are `vladv report docs/results/transfer-records`'s
    transfer section, verbatim (headings one level down); every off-diagonal cell was crafted
    on another model."""
    folder = tmp_path / "transfer"
    shutil.copytree(RESULTS / "transfer-records", folder)
    records = _load(folder)
    crafted = [r for r in records if r["config"]["source"] is not None]
    assert crafted and all(
        r["config"]["source"] != {k: r["config"][k] for k in ("backbone", "defense", "augmenters")}
        for r in crafted
    )
    assert all(r["data"]["options"]["test_domain"] == "real" for r in records)
    summary = Path(report(folder)["files"]["summary_md"]).read_text()
    gen = _gen_results()
    assert _block("transfer-summary") == gen.section(summary, "## Transfer", gen.DIFFERENCES)


def test_v2_examples_are_the_selected_cells_and_reach_the_gallery(tmp_path):
    """docs/results/v2-records/examples holds the saved examples of exactly the cells
    docs/gen_results.py selects, and the report's gallery shows them."""
    gen = _gen_results()
    folder = tmp_path / "v2"
    shutil.copytree(RESULTS / "v2-records", folder)
    records = _load(folder)
    selected = {r["run_id"] for r in records if gen.shows_examples(r)}
    assert len(selected) >= 16
    assert {p.name for p in (folder / "examples").iterdir()} == selected
    page = Path(report(folder)["files"]["gallery"]).read_text()
    shown = {src.split("/")[1] for src in re.findall(r"<img src='(examples/[^']+)'", page)}
    assert shown == selected and "<mark>" in page


def test_align_block_is_the_report_of_the_committed_align_records(tmp_path):
    """docs/results.md's ALIGN-style tables are `vladv report docs/results/align-records`,
    verbatim: every record is the ALIGN-style embedded model, seed 0, on the real test split,
    and the grid is complete (3 training sets × 6 defenses × 4 attacks)."""
    records = _blocks_are_the_report(tmp_path, "align-records", "align")
    assert len(records) == 72
    assert {r["model"]["model"] for r in records} == {"vladv-tiny-align"}
    assert {r["config"]["seed"] for r in records} == {0}
    assert all(r["data"]["options"]["test_domain"] == "real" for r in records)
    cells = {
        (
            r["config"]["backbone"]["options"]["pretrain_data"],
            _label(r),
            r["config"]["attack"]["name"],
        )
        for r in records
    }
    assert len(cells) == 72


def _complete_rows(records: list[dict]) -> dict[tuple, list[dict]]:
    """Assert that every (training set, defense, seed) row of a graded grid has all four attacks
    and one evaluated model, on the graded CLIP and the real test split; return the rows."""
    assert {r["model"]["model"] for r in records} == {"vladv-tiny-aerial"}
    assert {r["config"]["backbone"]["options"]["pretrain_graded"] for r in records} == {1.0}
    assert all(r["data"]["options"]["test_domain"] == "real" for r in records)
    rows: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        pretrain_data = r["config"]["backbone"]["options"]["pretrain_data"]
        rows[(pretrain_data, _label(r), r["config"]["seed"])].append(r)
    for row in rows.values():
        attacks = sorted(r["config"]["attack"]["name"] for r in row)
        assert attacks == ["bert-attack", "co-attack", "pgd", "sga"]
        assert len({r["model"]["parameters_sha256"] for r in row}) == 1
    return rows


def test_graded_block_is_the_report_of_the_committed_graded_rows(tmp_path):
    """docs/results.md's section on the current (graded) default models is `vladv report` of the
    grid's committed records, verbatim; the records are the graded CLIPs, seed 0, on the real test
    split, committed only as complete rows: each (training set, defense) has all four attacks and
    one evaluated model."""
    gen = _gen_results()
    records = _blocks_are_the_report(tmp_path, gen.GRADED_RECORDS, "graded")
    assert len(records) >= 36 and len(records) % 4 == 0
    assert {r["config"]["seed"] for r in records} == {0}
    _complete_rows(records)
    # results.md's stated cell counts follow the committed records
    prose = (RESULTS.parent / "results.md").read_text().replace("**", "")
    counts = set(re.findall(r"(\d+) of (?:its )?72 (?:seed-0 )?cells", prose))
    assert counts == {str(len(records))}


def test_graded_seeds_block_is_seed_1_beside_the_same_rows_of_seed_0(tmp_path):
    """results.md's later-seed blocks are `vladv report` of the graded grid's committed seed-1
    and seed-2 rows with seed 0's records of the same rows, verbatim; those rows are committed
    whole too, seed 1 has all of the rows, seed 2 some of them."""
    gen = _gen_results()
    records = _blocks_are_the_report(tmp_path, gen.paired_seeds, "graded-seeds")
    rows = _complete_rows(records)
    by_seed = defaultdict(set)
    for pretrain_data, label, seed in rows:
        by_seed[seed].add((pretrain_data, label))
    assert set(by_seed) == {0, 1, 2} and by_seed[0] == by_seed[1] and by_seed[2] <= by_seed[0]


def test_the_graded_experiment_file_plans_the_committed_records(tmp_path):
    """Resuming the graded grid from its experiment file skips every committed cell: the file
    plans exactly the committed records' run ids (a changed default, such as the captioner's
    steps, must be pinned there, or the resume would recompute the rows under other ids)."""
    import vladv

    gen = _gen_results()
    toml = RESULTS / "graded-partial" / "research_question_graded.toml"
    committed = defaultdict(set)  # seed -> run ids
    for folder in (*gen.GRADED_RECORDS, *gen.GRADED_LATER_SEEDS):
        for r in _load(RESULTS / folder):
            committed[r["config"]["seed"]].add(r["run_id"])
    assert set(committed) == {0, 1, 2}
    for seed, ids in committed.items():
        planned = vladv.run(config=toml, seed=seed, dry_run=True, progress=False)
        assert ids <= {c["run_id"] for c in planned}


def test_captioner_block_is_mat_caption_with_both_captioners_beside_seed_0(tmp_path):
    """results.md's captioner blocks are `vladv report` of MAT + caption with the 4,000-step
    captioner (the real-data model, seed 0) beside that model's seed-0 rows, verbatim: both MAT +
    caption rows complete, one per captioner, labelled by their steps."""
    gen = _gen_results()
    records = _blocks_are_the_report(tmp_path, gen.captioner_rows, "graded-captioner")

    def steps(r):
        return [a["options"]["pretrain_steps"] for a in r["config"]["augmenters"]]

    for n in (1000, 4000):
        rows = _complete_rows([r for r in records if steps(r) == [n]])
        assert set(rows) == {("real", "mat+caption", 0)}
    rows = _complete_rows([r for r in records if not steps(r)])
    assert set(rows) == {("real", d, 0) for d in ("none", "tecoa", "fare", "mat")}
    assert "| mat+caption(pretrain_steps=1000) |" in _block("graded-captioner-summary")

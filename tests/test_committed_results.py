"""`vladv report` on the committed records of the synthetic-aerial experiment (docs/results/)."""

import csv
import json
import shutil
from pathlib import Path

from vladv.reports import report

RECORDS = Path(__file__).resolve().parent.parent / "docs" / "results" / "records"


def test_report_on_committed_records(tmp_path):
    folder = tmp_path / "records"
    shutil.copytree(RECORDS, folder)
    records = [json.loads(p.read_text()) for p in folder.glob("*.json") if p.stem != "experiment"]
    out = report(folder)
    rows = list(csv.DictReader(open(out["files"]["summary_csv"])))
    assert len(rows) == len(records)  # one seed: one row per cell
    for rec in records:
        cfg = rec["config"]
        label = cfg["defense"]["name"] + "".join("+" + a["name"] for a in cfg["augmenters"])
        [row] = [r for r in rows if r["defense"] == label and r["attack"] == cfg["attack"]["name"]]
        assert float(row["adversarial_tr_r1_mean"]) == rec["metrics"]["adversarial"]["tr_r1"]
        assert float(row["clean_ir_r1_mean"]) == rec["metrics"]["clean"]["ir_r1"]
    png = Path(out["files"]["defenses_attacks"]).read_bytes()
    assert png[:4] == b"\x89PNG" and len(png) > 20_000
    assert {"none", "tecoa", "fare", "mat"} <= {r["defense"] for r in rows}

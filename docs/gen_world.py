"""docs/world.md's figure and calibration table.

python docs/gen_world.py            # docs/world/domains.png: both domains, same scenes
python docs/gen_world.py --table    # the calibration table, from `vladv report` on the
                                    # committed records in docs/world/records
python docs/gen_world.py --table docs/world/records-onehot   # the same for another folder
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vladv_plugins.synthetic import SyntheticOptions, drawn_scenes, generate  # noqa: E402

OUT = Path(__file__).parent / "world" / "domains.png"
RECORDS = Path(__file__).parent / "world" / "records"
ONEHOT_RECORDS = Path(__file__).parent / "world" / "records-onehot"  # pretrain_graded=0
N = 6
# SGA's published white-box table, CLIP ViT-B/16 on Flickr30k, conditional ASR@1 TR / IR
PUBLISHED = {
    "pgd": (70.92, 78.61),
    "bert-attack": (28.34, 39.08),
    "co-attack": (93.25, 95.86),
    "sga": (99.08, 98.94),
}
PUBLISHED_SETTINGS = {
    "pgd": {},
    "bert-attack": {"objective": "kl", "reference_compat": True},
    "co-attack": {"reference_compat": True},
    "sga": {"reference_compat": True},
}


def _non_default(attack: str, options: dict) -> dict:
    """The options of a record that differ from the attack's defaults."""
    import vladv
    from vladv.options import options_to_dict

    defaults = options_to_dict(vladv.get_registry().get("attack", attack).options())
    return {k: v for k, v in options.items() if k in defaults and defaults[k] != v}


def calibration_table(records: Path = RECORDS) -> str:
    """The Markdown table of docs/world.md, from ``vladv report``'s summary.csv of ``records``."""
    import csv
    import json
    import tempfile

    from vladv.reports import report

    by_id = {
        p.stem: json.loads(p.read_text()) for p in records.glob("*.json") if p.stem != "experiment"
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = report(records, Path(tmp) / "report")
        rows = list(csv.DictReader(open(out["files"]["summary_csv"])))
    lines = [
        "| attack | settings | clean TR / IR R@1 | ASR@1 TR / IR (vladv) | "
        "published CLIP ViT-B/16 | difference |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    order = list(PUBLISHED)
    for row in sorted(rows, key=lambda r: (order.index(r["attack"]), r["run_ids"])):
        attack = row["attack"]
        options = by_id[row["run_ids"].split()[0]]["config"]["attack"]["options"]
        published = all(options.get(k) == v for k, v in PUBLISHED_SETTINGS[attack].items())
        changed = _non_default(attack, options)
        setting = "published" if published else "vladv default"
        if not published and changed:
            setting = ", ".join(f"{k}={v}" for k, v in changed.items())
        tr, ir = float(row["asr_tr_r1_conditional_mean"]), float(row["asr_ir_r1_conditional_mean"])
        ptr, pir = PUBLISHED[attack]
        diff = f"{tr - ptr:+.1f} / {ir - pir:+.1f}" if published else "–"
        if attack == "pgd":
            setting, diff = "published = default", f"{tr - ptr:+.1f} / {ir - pir:+.1f}"
        extra = ", ".join(f"{k}={v}" for k, v in PUBLISHED_SETTINGS[attack].items())
        lines.append(
            f"| {attack} | {setting}{f' ({extra})' if published and extra else ''} | "
            f"{float(row['clean_tr_r1_mean']):.1f} / {float(row['clean_ir_r1_mean']):.1f} | "
            f"{tr:.1f} / {ir:.1f} | {ptr:.1f} / {pir:.1f} | {diff} |"
        )
    return "\n".join(lines)


def main() -> None:
    real = generate(SyntheticOptions(train_size=N), "train")
    opts = SyntheticOptions(train_size=N, train_domain="generated", mismatch_rate=0.34)
    gen = generate(opts, "train")
    shown = drawn_scenes(opts, "train", gen[2])
    fig, axes = plt.subplots(2, N, figsize=(2.6 * N, 7.4))
    for row, (imgs, caps, label) in enumerate(
        ((real[0], real[1], "real"), (gen[0], gen[1], "generated"))
    ):
        for i in range(N):
            ax = axes[row, i]
            ax.imshow(imgs[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            note = " [mismatch]" if row == 1 and shown[i] != gen[2][i] else ""
            ax.set_title(f"{label} #{i}{note}", fontsize=9)
            ax.set_xlabel("\n".join(textwrap.wrap(caps[i][0], 34)), fontsize=7)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(OUT)


if __name__ == "__main__":
    import sys

    if "--table" in sys.argv:
        rest = sys.argv[sys.argv.index("--table") + 1 :]
        print(calibration_table(Path(rest[0]) if rest else RECORDS))
    else:
        main()

"""docs/results.md's report blocks and figure, from the records committed in docs/results/.

python docs/gen_results.py                    # rewrite the blocks between the <!-- ... -->
                                              # markers and docs/results/v2-defenses_attacks.png
python docs/gen_results.py collect v2-records runs/rq-seed0 runs/rq-seed1 ...
                                              # copy the finished records of run folders into
                                              # docs/results/v2-records, with the first folder's
                                              # experiment.json and the saved examples of a few
                                              # cells (EXAMPLES: the rest stay out of the
                                              # repository to keep it small)
python docs/gen_results.py collect align-records runs/rq-align ...
                                              # the same for the ALIGN-style model's grid
The grid on the final (graded) models is read where it is committed as it grows, row by row:
docs/results/graded-partial/seed0 and seed0-mat (the folders of its two processes, merged), and
its seed-1 and seed-2 rows (graded-partial/seed1, seed1-mat, seed2) beside seed 0's records of
the same rows.

Prose outside the markers is left alone; tests/test_committed_results.py checks that every block
is the report of its records, verbatim.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from vladv.reports import report, word_changes
from vladv.results import MANIFEST, defense_label

DOCS = Path(__file__).resolve().parent
RESULTS = DOCS / "results"
PAGE = DOCS / "results.md"
DIFFERENCES = "## Defense differences"
FIGURE = RESULTS / "v2-defenses_attacks.png"
ALIGN_RECORDS = "align-records"  # the ALIGN-style embedded model's grid (seed 0)
ALIGN_FIGURE = RESULTS / "align-defenses_attacks.png"
# the grid on the final (graded-target) embedded models: the folders of its two processes
GRADED_RECORDS = ("graded-partial/seed0", "graded-partial/seed0-mat")
GRADED_FIGURE = RESULTS / "graded-defenses_attacks.png"
# its seed-1 and seed-2 rows so far (a row: one training set and defense, its four attacks), one
# folder per process that computed them; the first (seed1) gives the grid's order
GRADED_LATER_SEEDS = tuple(
    sorted(
        f"graded-partial/{p.name}"
        for p in (RESULTS / "graded-partial").glob("seed[12]*")
        if p.is_dir()
    )
)
# MAT + caption with the 4,000-step captioner (the default since 2026-12-01), real-data model,
# seed 0: a row beside seed 0's rows of that model made with the 1,000-step captioner
GRADED_CAPTIONER = "graded-partial/seed0-caption4k"
CAPTIONER_ROWS = {("real", d) for d in ("none", "tecoa", "fare", "mat", "mat+caption")}
EXAMPLES_FIGURE = RESULTS / "v2-examples.png"
# the cells whose saved examples are committed: seed 0 of the real-data embedded CLIP, no 1:N
# augmentation
EXAMPLES = {
    "seed": 0,
    "model": "vladv-tiny-aerial",
    "pretrain_data": "real",
    "defenses": ("none", "tecoa", "fare", "mat"),
}


def shows_examples(record: dict) -> bool:
    """Whether ``record`` is one of the cells whose examples are committed (:data:`EXAMPLES`)."""
    cfg = record.get("config") or {}
    backbone = (cfg.get("backbone") or {}).get("options", {})
    return (
        cfg.get("seed") == EXAMPLES["seed"]
        and backbone.get("model") == EXAMPLES["model"]
        and backbone.get("pretrain_data") == EXAMPLES["pretrain_data"]
        and (cfg.get("defense") or {}).get("name") in EXAMPLES["defenses"]
        and not cfg.get("augmenters")
        and not cfg.get("source")
    )


def section(summary: str, start: str | None, stop: str | None = None) -> str:
    """The part of a report's summary.md from heading ``start`` (None: the top) to ``stop``,
    headings one level down when it starts at a heading (it then sits under the page's own)."""
    text = summary[summary.index(start) :] if start else summary
    if stop and stop in text:
        text = text[: text.index(stop)]
    if start:
        text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)
    return text.strip()


def merged(records: str | tuple[str, ...], folder: Path) -> Path:
    """A copy in ``folder`` of the records of docs/results/<records> (several folders: merged,
    with the first one's manifest)."""
    first, *others = (records,) if isinstance(records, str) else records
    shutil.copytree(RESULTS / first, folder)
    for other in others:
        for path in (RESULTS / other).glob("*.json"):
            if path.name != MANIFEST:
                shutil.copyfile(path, folder / path.name)
    return folder


def graded_row(record: dict) -> tuple[str, str]:
    """(training set, defense label) of a graded-grid record: its row."""
    cfg = record["config"]
    return cfg["backbone"]["options"].get("pretrain_data"), defense_label(cfg)


def with_seed0_rows(records: str | tuple[str, ...], folder: Path, rows: set | None = None) -> Path:
    """In ``folder``: docs/results/<records> with seed 0's graded records of ``rows`` ((training
    set, defense label) pairs; default: the rows ``records`` hold)."""
    merged(records, folder)
    if rows is None:
        paths = [p for p in folder.glob("*.json") if p.name != MANIFEST]
        rows = {graded_row(json.loads(p.read_text())) for p in paths}
    for name in GRADED_RECORDS:
        for path in (RESULTS / name).glob("*.json"):
            if path.name != MANIFEST and graded_row(json.loads(path.read_text())) in rows:
                shutil.copyfile(path, folder / path.name)
    return folder


def paired_seeds(folder: Path) -> Path:
    """In ``folder``: the graded grid's seed-1 and seed-2 records with seed 0's records of the
    same rows."""
    return with_seed0_rows(GRADED_LATER_SEEDS, folder)


def captioner_rows(folder: Path) -> Path:
    """In ``folder``: MAT + caption with the 4,000-step captioner beside seed 0's undefended,
    TeCoA, FARE, MAT and MAT + caption (1,000-step captioner) rows of the real-data model."""
    with_seed0_rows(GRADED_CAPTIONER, folder, CAPTIONER_ROWS)
    shutil.copyfile(RESULTS / GRADED_RECORDS[0] / MANIFEST, folder / MANIFEST)  # the grid's order
    return folder


def summary(
    records: str | tuple[str, ...] | Callable[[Path], Path], figure: Path | None = None
) -> str:
    """``vladv report`` of docs/results/<records> in a scratch copy (several folders: merged; a
    function: the folder it fills): its summary.md text."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "records"
        folder = records(scratch) if callable(records) else merged(records, scratch)
        out = report(folder)
        if figure is not None:
            shutil.copyfile(out["files"]["defenses_attacks"], figure)
        return Path(out["files"]["summary_md"]).read_text()


def blocks() -> dict[str, str]:
    """Every marker block of results.md: tag → text."""
    v2 = summary("v2-records", FIGURE)
    align = summary(ALIGN_RECORDS, ALIGN_FIGURE)
    transfer = summary("transfer-records")
    graded = summary(GRADED_RECORDS, GRADED_FIGURE)
    seeds = summary(paired_seeds)
    captioner = summary(captioner_rows)
    return {
        "graded-captioner-summary": section(captioner, None, DIFFERENCES),
        "graded-captioner-differences": section(captioner, DIFFERENCES),
        "graded-summary": section(graded, None, DIFFERENCES),
        "graded-differences": section(graded, DIFFERENCES),
        "graded-seeds-summary": section(seeds, None, DIFFERENCES),
        "graded-seeds-differences": section(seeds, DIFFERENCES),
        "v2-summary": section(v2, None, DIFFERENCES),
        "v2-differences": section(v2, DIFFERENCES),
        "align-summary": section(align, None, DIFFERENCES),
        "align-differences": section(align, DIFFERENCES),
        "transfer-summary": section(transfer, "## Transfer", DIFFERENCES),
    }


def put(text: str, tag: str, body: str) -> str:
    """``text`` with the block between ``<!-- tag -->`` and ``<!-- /tag -->`` replaced."""
    start, end = f"<!-- {tag} -->\n", f"\n<!-- /{tag} -->"
    head, rest = text.split(start, 1)
    return head + start + body + end + rest.split(end, 1)[1]


def collect(name: str, folders: list[str]) -> None:
    """Copy the records of ``folders`` into docs/results/<name> (first copy of a run id wins)."""
    if not folders:
        raise SystemExit("collect: name the run folders to copy from")
    dest = RESULTS / name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    examples = 0
    for folder in map(Path, folders):
        for path in sorted(folder.glob("*.json")):
            if path.name == MANIFEST or (dest / path.name).exists():
                continue
            shutil.copyfile(path, dest / path.name)
            saved = folder / "examples" / path.stem
            if saved.is_dir() and shows_examples(json.loads(path.read_text())):
                shutil.copytree(saved, dest / "examples" / path.stem)
                examples += 1
    shutil.copyfile(Path(folders[0]) / MANIFEST, dest / MANIFEST)
    print(f"{dest}: {len(list(dest.glob('*.json'))) - 1} records, examples of {examples}")


def _changed(clean: str, adversarial: str) -> str:
    """``adversarial`` with each changed word shown as [old → new]."""
    return " ".join(
        f"[{old} → {new}]" if changed else new
        for changed, old, new in word_changes(clean, adversarial)
    )


def examples_figure(attack: str = "sga", defenses: tuple[str, ...] = ("none", "mat")) -> Path:
    """docs/results/v2-examples.png: the first two saved examples of ``attack`` on each of
    ``defenses`` (real-data model, seed 0): clean image, adversarial image, the perturbation
    magnified, and the first caption with its changed word."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    folder = RESULTS / "v2-records"
    saved = {}  # defense -> examples folder of its `attack` cell (only selected cells have one)
    for base in sorted((folder / "examples").iterdir()):
        cfg = json.loads((folder / f"{base.name}.json").read_text())["config"]
        if cfg["attack"]["name"] == attack and cfg["defense"]["name"] in defenses:
            saved[cfg["defense"]["name"]] = base
    rows = [
        (defense, saved[defense], ex)
        for defense in defenses
        if defense in saved
        for ex in json.loads((saved[defense] / "index.json").read_text())["examples"][:2]
    ]
    fig, axes = plt.subplots(
        len(rows), 4, figsize=(12, 1.9 * len(rows)), gridspec_kw={"width_ratios": [1, 1, 1, 5]}
    )
    for r, (defense, base, ex) in enumerate(rows):
        for c, kind in enumerate(("clean", "adversarial", "perturbation")):
            ax = axes[r][c]
            ax.imshow(Image.open(base / ex["images"][kind]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(
                    {"perturbation": "perturbation (magnified)"}.get(kind, kind), fontsize=9
                )
        axes[r][0].set_ylabel(f"{defense}\nimage {ex['image_id']}", fontsize=9)
        text = _changed(ex["clean_texts"][0], ex["adv_texts"][0])
        axes[r][3].axis("off")
        axes[r][3].text(0, 0.5, textwrap.fill(text, 90), va="center", fontsize=8.5)
    fig.suptitle(f"{attack} on the real-data model (world v2, seed 0): image and first caption")
    fig.tight_layout()
    fig.savefig(EXAMPLES_FIGURE, dpi=100)
    plt.close(fig)
    return EXAMPLES_FIGURE


def main(argv: list[str]) -> None:
    if argv[:1] == ["collect"]:
        collect(argv[1], argv[2:])
        return
    text = PAGE.read_text()
    for tag, body in blocks().items():
        text = put(text, tag, body)
    PAGE.write_text(text)
    print(f"{PAGE}: blocks rewritten; {FIGURE}; {examples_figure()}")


if __name__ == "__main__":
    main(sys.argv[1:])

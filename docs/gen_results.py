"""docs/results.md's report blocks and figure, from the records committed in docs/results/.

python docs/gen_results.py                    # rewrite the blocks between the <!-- ... -->
                                              # markers and docs/results/v2-defenses_attacks.png
python docs/gen_results.py collect v2-records runs/rq-seed0 runs/rq-seed1 ...
                                              # copy the finished records (JSON only) of run
                                              # folders into docs/results/v2-records, with the
                                              # first folder's experiment.json

Prose outside the markers is left alone; tests/test_committed_results.py checks that every block
is the report of its records, verbatim.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

from vladv.reports import report
from vladv.results import MANIFEST

DOCS = Path(__file__).resolve().parent
RESULTS = DOCS / "results"
PAGE = DOCS / "results.md"
DIFFERENCES = "## Defense differences"
FIGURE = RESULTS / "v2-defenses_attacks.png"


def section(summary: str, start: str | None, stop: str | None = None) -> str:
    """The part of a report's summary.md from heading ``start`` (None: the top) to ``stop``,
    headings one level down when it starts at a heading (it then sits under the page's own)."""
    text = summary[summary.index(start) :] if start else summary
    if stop and stop in text:
        text = text[: text.index(stop)]
    if start:
        text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)
    return text.strip()


def summary(records: str, figure: Path | None = None) -> str:
    """``vladv report`` of docs/results/<records> (in a scratch copy): its summary.md text."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "records"
        shutil.copytree(RESULTS / records, folder)
        out = report(folder)
        if figure is not None:
            shutil.copyfile(out["files"]["defenses_attacks"], figure)
        return Path(out["files"]["summary_md"]).read_text()


def blocks() -> dict[str, str]:
    """Every marker block of results.md: tag → text."""
    v2 = summary("v2-records", FIGURE)
    transfer = summary("transfer-records")
    return {
        "v2-summary": section(v2, None, DIFFERENCES),
        "v2-differences": section(v2, DIFFERENCES),
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
    for folder in map(Path, folders):
        for path in sorted(folder.glob("*.json")):
            if path.name != MANIFEST and not (dest / path.name).exists():
                shutil.copyfile(path, dest / path.name)
    shutil.copyfile(Path(folders[0]) / MANIFEST, dest / MANIFEST)
    print(f"{dest}: {len(list(dest.glob('*.json'))) - 1} records")


def main(argv: list[str]) -> None:
    if argv[:1] == ["collect"]:
        collect(argv[1], argv[2:])
        return
    text = PAGE.read_text()
    for tag, body in blocks().items():
        text = put(text, tag, body)
    PAGE.write_text(text)
    print(f"{PAGE}: blocks rewritten; {FIGURE}")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The defense comparison of a report: how much one defense keeps over another, paired per seed.

For every model (backbone and dataset) and every two defenses A, B of a folder, the difference
A − B of R@1 (clean, and under each attack; TR and IR, in points) per seed, then mean ± std over
the seeds both have. Differences are paired because the seeds share everything else (the
pretrained model, the test split, the attack's random draws), so the spread of the difference is
smaller than the spread of either side. A difference is marked when it lies beyond twice that
spread (two or more seeds) — how docs/results.md answers "does MAT beat TeCoA and FARE beyond
the seed spread".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from vladv.reports import _md, _mean_std, attack_label, esc, report_labels
from vladv.results import seeds_label

BEYOND = 2.0
"""A paired mean difference counts as beyond the seed spread when |mean| > BEYOND × std."""

Key = tuple[str, str]  # (backbone label, dataset)


def defense_differences(
    records: Iterable[dict[str, Any]], order: Callable[[str, str], tuple] | None = None
) -> list[dict[str, Any]]:
    """Flat rows, one per (model, defense, other defense, column): ``column`` is ``clean`` or an
    attack label; ``tr_mean``/``tr_std``/``ir_mean``/``ir_std`` of the per-seed differences
    (points), ``seeds`` both defenses have. White-box records of whole pairs only (a transfer or a
    one-part record measures something else). ``order`` sorts defenses and attacks (the
    report's grid order); by default ``none`` first, then by name."""
    records = [
        r
        for r in records
        if not isinstance(r["config"].get("source"), dict) and not r["config"]["attack"].get("part")
    ]
    if not records:
        return []
    labels = report_labels(records)
    # (model) -> defense -> column -> seed -> (tr, ir)
    cells: dict[Key, dict[str, dict[str, dict[int, tuple[Any, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    for rec in records:
        cfg, metrics = rec["config"], rec["metrics"]
        model = (labels[rec["run_id"]][0], cfg["dataset"]["name"])
        defense, seed = labels[rec["run_id"]][2], cfg["seed"]
        clean = metrics.get("clean") or {}
        cells[model][defense]["clean"].setdefault(seed, (clean.get("tr_r1"), clean.get("ir_r1")))
        if cfg["attack"]["name"] != "none":
            adv = metrics.get("adversarial") or {}
            cells[model][defense][attack_label(cfg)][seed] = (adv.get("tr_r1"), adv.get("ir_r1"))
    order = order or (lambda d, a: (d != "none", d, a != "none", a))
    rows = []
    for (backbone, dataset), by_defense in cells.items():
        defenses = sorted(by_defense, key=lambda d: order(d, "none"))
        columns = ["clean"] + sorted(
            {c for d in by_defense.values() for c in d if c != "clean"},
            key=lambda a: order("none", a.split(" ")[0]) + (a,),
        )
        for i, a in enumerate(defenses):
            for b in defenses[:i]:
                for column in columns:
                    va, vb = by_defense[a].get(column, {}), by_defense[b].get(column, {})
                    seeds = sorted(
                        s for s in set(va) & set(vb) if None not in va[s] and None not in vb[s]
                    )
                    if not seeds:
                        continue
                    row: dict[str, Any] = {
                        "backbone": backbone,
                        "dataset": dataset,
                        "defense": a,
                        "other": b,
                        "column": column,
                        "seeds": seeds,
                    }
                    for k, side in enumerate(("tr", "ir")):
                        row[f"{side}_mean"], row[f"{side}_std"] = _mean_std(
                            [va[s][k] - vb[s][k] for s in seeds]
                        )
                    rows.append(row)
    return rows


def beyond_spread(mean: float, std: float | None, n: int) -> bool:
    """Whether a paired mean difference over ``n`` seeds lies beyond :data:`BEYOND` × its std."""
    return n >= 2 and std is not None and abs(mean) > BEYOND * std


def _signed(row: dict[str, Any], side: str) -> str:
    mean, std, n = row[f"{side}_mean"], row[f"{side}_std"], len(row["seeds"])
    mean = mean if round(mean, 1) != 0 else 0.0  # no "-0.0"
    text = f"{mean:+.1f}" if n < 2 else f"{mean:+.1f}±{std:.1f}"
    return text + ("*" if beyond_spread(mean, std, n) else "")


def difference_tables(
    rows: Sequence[dict[str, Any]],
) -> list[tuple[str, str, list[int], list[str], list[tuple[str, list[str]]]]]:
    """Per model: (backbone, dataset, seeds, columns, [(``A − B``, cells)]); a cell is
    ``TR / IR`` with mean±std (``*`` beyond the spread) or ``–``."""
    tables = []
    for backbone, dataset in dict.fromkeys((r["backbone"], r["dataset"]) for r in rows):
        group = [r for r in rows if (r["backbone"], r["dataset"]) == (backbone, dataset)]
        columns = list(dict.fromkeys(r["column"] for r in group))
        cell = {(r["defense"], r["other"], r["column"]): r for r in group}
        seeds = sorted({s for r in group for s in r["seeds"]})
        lines = []
        for a, b in dict.fromkeys((r["defense"], r["other"]) for r in group):
            values = [
                "–"
                if (r := cell.get((a, b, c))) is None
                else f"{_signed(r, 'tr')} / {_signed(r, 'ir')}"
                + (f" (n={len(r['seeds'])})" if len(r["seeds"]) != len(seeds) else "")
                for c in columns
            ]
            lines.append((f"{a} − {b}", values))
        tables.append((backbone, dataset, seeds, columns, lines))
    return tables


EXPLANATION = (
    "R@1 of the first defense minus the second's, TR / IR in points, paired per seed (only seeds "
    "both have), mean±std over seeds; `clean` compares clean R@1. `*`: beyond "
    f"{BEYOND:g}× the spread of the per-seed differences (two or more seeds)."
)


def defense_differences_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """One Markdown table per model: a row per defense pair (A − B), a column per attack."""
    if not rows:
        return ""
    out = ["## Defense differences\n", EXPLANATION + "\n"]
    for backbone, dataset, seeds, columns, lines in difference_tables(rows):
        out.append(f"### {_md(backbone)} on {_md(dataset)} ({seeds_label(seeds)})\n")
        out.append("| defense − other | " + " | ".join(map(_md, columns)) + " |")
        out.append("| --- " * (len(columns) + 1) + "|")
        out += [f"| {_md(label)} | " + " | ".join(values) + " |" for label, values in lines]
        out.append("")
    return "\n".join(out)


def defense_differences_html(rows: Sequence[dict[str, Any]]) -> str:
    """The same tables for the report's index page (every text HTML-escaped)."""
    if not rows:
        return ""
    out = [f"<h2>Defense differences</h2><p>{esc(EXPLANATION.replace('`', ''))}</p>"]
    for backbone, dataset, seeds, columns, lines in difference_tables(rows):
        head = "".join(f"<th>{esc(c)}</th>" for c in ["defense − other", *columns])
        body = "".join(
            f"<tr><td>{esc(label)}</td>"
            + "".join(f"<td class=num>{esc(v)}</td>" for v in values)
            + "</tr>"
            for label, values in lines
        )
        out.append(
            f"<h3>{esc(backbone)} on {esc(dataset)} ({esc(seeds_label(seeds))})</h3>"
            f"<table><tr>{head}</tr>{body}</table>"
        )
    return "".join(out)

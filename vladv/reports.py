"""Reports: pure functions of result records → table, CSV, PNG plots and an HTML gallery.

``vladv report DIR`` writes into ``DIR/report/``:

- ``summary.csv``: one row per (backbone, dataset, defense+augmenters, attack, attack options)
  with mean and std over seeds of clean/adversarial R@1/5/10, RSUM and both ASRs;
- ``records.csv``: one row per record;
- ``summary.md``: Markdown tables (defenses × attacks) of R@1 and both ASR conventions, mean ± std
  over seeds, ready for a paper or a README, then the defense differences (every two defenses,
  paired per seed; :mod:`vladv.report_defenses`);
- ``defense_differences.csv``: those differences, one row per model, defense pair and column;
- ``robust_vs_eps.png``: robust TR@1 and IR@1 against ε (·255) per defense and attack;
- ``defenses_attacks.png``: grouped bars of R@1 per defense under each attack (clean included);
- ``gallery.html``: saved adversarial examples (clean, adversarial, magnified perturbation, the
  caption with changed words marked), when runs were made with ``--save-examples``; the images are
  copied into ``examples/`` next to it, so the report folder can be moved, zipped or served;
- ``index.html``: the experiment's configuration, the summary table, the plots and links to the
  rest.

A folder from someone else cannot crash a report: files that are not usable records are skipped
with one warning each, example images are read only from inside the records folder's
``examples/``, and every piece of text from the folder is HTML-escaped by :func:`esc`.
"""

from __future__ import annotations

import csv
import difflib
import html
import json
import math
import re
import shutil
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.table import Table
from rich.text import Text

from vladv.errors import VladvError
from vladv.results import (
    MANIFEST,
    defense_label,
    load_record,
    part_suffix,
    read_manifest,
    seeds_label,
)

METRICS = ("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "rsum")
ASR = ("tr_r1_conditional", "ir_r1_conditional", "tr_r1_delta", "ir_r1_delta")
BUDGET = ("max_linf", "max_words_changed")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
KINDS = ("clean", "adversarial", "perturbation")
PLOTS = {"robust_vs_eps": "robust R@1 against ε", "defenses_attacks": "R@1 per defense and attack"}


def esc(value: Any) -> str:
    """The one HTML escaping of report pages: ``str(value)`` with ``& < > " '`` escaped."""
    return html.escape(str(value), quote=True)


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _named(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("name"), str)


def record_problem(rec: Any) -> str | None:
    """Why ``rec`` cannot go into a report (a missing or mistyped field), or None if it can."""
    if not isinstance(rec, dict) or not isinstance(rec.get("run_id"), str):
        return "no run_id"
    cfg = rec.get("config")
    if not isinstance(cfg, dict):
        return "no config"
    for key in ("backbone", "dataset", "defense", "attack"):
        if not _named(cfg.get(key)):
            return f"no config.{key}.name"
    if not isinstance(cfg["attack"].get("options"), dict):
        return "no config.attack.options"
    threat = cfg["attack"].get("threat_model")
    if threat is not None and not (
        isinstance(threat, dict) and _number(threat.get("eps")) and _number(threat.get("max_words"))
    ):
        return "malformed config.attack.threat_model"
    source = cfg.get("source")
    if source is not None and not (
        isinstance(source, dict)
        and _named(source.get("backbone"))
        and _named(source.get("defense"))
        and all(_named(a) for a in source.get("augmenters") or [])
    ):
        return "malformed config.source"
    if not isinstance(cfg.get("augmenters") or [], list) or not all(
        _named(a) for a in cfg.get("augmenters") or []
    ):
        return "malformed config.augmenters"
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg["seed"], bool):
        return "no integer config.seed"
    metrics = rec.get("metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("clean"), dict):
        return "no metrics.clean"
    for block, keys in (
        ("clean", METRICS),
        ("adversarial", METRICS),
        ("asr", ASR),
        ("budget", BUDGET),
    ):
        values = metrics.get(block) or {}
        if not isinstance(values, dict) or not all(_number(values.get(k)) for k in keys):
            return f"malformed metrics.{block}"
    return None


def load_report_records(directory: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The usable records in ``directory`` (by creation time) and one warning per skipped file.

    A file that links outside ``directory`` is refused unread. Raises :class:`VladvError` when
    ``directory`` is missing or holds no usable record.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise VladvError(f"no result directory at {directory}")
    root = directory.resolve()
    records, warnings = [], []
    for path in sorted(directory.glob("*.json")):
        if path.name == MANIFEST:
            continue
        if not path.resolve().is_relative_to(root):
            warnings.append(f"skipped {path}: links outside {directory}; refused")
            continue
        try:
            rec = load_record(path)
        except VladvError as exc:
            warnings.append(f"skipped {exc}")
            continue
        problem = record_problem(rec)
        if problem is not None:
            warnings.append(f"skipped {path}: {problem}")
        else:
            records.append(rec)
    if not records:
        skipped = f" ({len(warnings)} skipped; first: {warnings[0]})" if warnings else ""
        raise VladvError(f"no usable result records in {directory}{skipped}")
    return sorted(records, key=lambda r: (str(r.get("created", "")), r["run_id"])), warnings


def attack_label(config: dict[str, Any]) -> str:
    """``pgd`` or ``pgd ε=4/255`` (the ε of image attacks is part of the label), and
    ``sga ε=2/255 [image part]`` when only one half of the adversarial pairs was evaluated."""
    threat = config["attack"].get("threat_model") or {}
    label = config["attack"]["name"]
    if threat.get("eps"):
        label += f" ε={round(threat['eps'] * 255, 2):g}/255"
    return label + part_suffix(config["attack"])


def _group_key(rec: dict[str, Any], labels: dict[str, tuple[str, str, str]]) -> tuple:
    """(backbone, dataset, defense, attack, attack options and part, source): the rows of a
    report.

    The backbone and the defense are labelled with the options that tell the folder's models
    apart and the source is ``self`` for white-box records, so a folder without transfers keeps
    its rows.
    """
    cfg = rec["config"]
    opts = json.dumps([cfg["attack"]["options"], cfg["attack"].get("part")], sort_keys=True)
    backbone, source, defense = labels[rec["run_id"]]
    return (
        backbone,
        cfg["dataset"]["name"],
        defense,
        cfg["attack"]["name"],
        opts,
        source if isinstance(cfg.get("source"), dict) else "self",
    )


def report_labels(records: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    """``run_id`` → (backbone label, source model label, defense label) of a folder's records."""
    from vladv.report_transfer import defense_labels, model_labels

    backbones = {rid: labels[0] for rid, labels in model_labels(records, defenses=False).items()}
    defenses = defense_labels(records, backbones)
    return {
        rid: (backbones[rid], source, defenses[rid])
        for rid, (_, source) in model_labels(records).items()
    }


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def grid_order(grid: dict[str, Any] | None) -> Callable[[str, str], tuple]:
    """Sort key of (defense label, attack name): the grid's order, else ``none`` first, by name."""
    lists = {axis: (grid or {}).get(axis) for axis in ("defenses", "attacks")}
    rank = {
        axis: {name: i for i, name in enumerate(names) if isinstance(name, str)}
        if isinstance(names, list)
        else {}
        for axis, names in lists.items()
    }

    def position(axis: str, name: str) -> tuple[int, str]:
        plain = re.sub(r"\([^)]*\)", "", name)  # mat(pgd_steps=10)+caption: mat+caption's place
        return rank[axis].get(plain, 0 if plain == "none" else len(rank[axis]) + 1), name

    return lambda defense, attack: (
        position("defenses", defense),
        attack != "none",
        position("attacks", attack),
    )


def aggregate(
    records: Iterable[dict[str, Any]], grid: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Mean and std over seeds per (backbone, dataset, defense, attack, attack options).

    Rows follow the order of ``grid``'s defenses and attacks (an experiment manifest's grid) where
    given; otherwise ``none`` first, then by name.
    """
    records = list(records)
    labels = report_labels(records)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for rec in sorted(
        records, key=lambda r: (_group_key(r, labels), r["config"]["seed"], r["run_id"])
    ):
        groups[_group_key(rec, labels)].append(rec)
    rows = []
    for (backbone, dataset, defense, attack, _, source), recs in groups.items():
        first = recs[0]["config"]
        threat = first["attack"].get("threat_model") or {}
        row: dict[str, Any] = {
            "backbone": backbone,
            "dataset": dataset,
            "defense": defense,
            "attack": attack,
            "attack_label": attack_label(first),
            "part": first["attack"].get("part"),
            "eps": threat.get("eps"),
            "max_words": threat.get("max_words"),
            "source": source,
            "seeds": [r["config"]["seed"] for r in recs],
            "run_ids": [r["run_id"] for r in recs],
        }
        for block in ("clean", "adversarial"):
            for m in METRICS:
                mean, std = _mean_std([(r["metrics"].get(block) or {}).get(m) for r in recs])
                row[f"{block}_{m}_mean"], row[f"{block}_{m}_std"] = mean, std
        for a in ASR:
            mean, std = _mean_std([(r["metrics"].get("asr") or {}).get(a) for r in recs])
            row[f"asr_{a}_mean"], row[f"asr_{a}_std"] = mean, std
        rows.append(row)
    order = grid_order(grid)
    rows.sort(
        key=lambda r: (
            r["backbone"],
            r["dataset"],
            *order(r["defense"], r["attack"]),
            r["eps"] or 0.0,
            r["source"] != "self",
            r["source"],
        )
    )
    return rows


def _pm(row: dict[str, Any] | None, key: str) -> str:
    """``mean±std`` of ``key`` over the row's seeds (just the mean for one seed)."""
    if row is None or row[f"{key}_mean"] is None:
        return "–"
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    return f"{mean:.1f}" if len(row["seeds"]) < 2 or std is None else f"{mean:.1f}±{std:.1f}"


def _shared_columns(rows: Sequence[dict[str, Any]]) -> tuple[list[str], str]:
    """The id columns that vary between rows, and a caption naming those all rows share."""
    shared = {k: {r.get(k, "self") for r in rows} for k in ("backbone", "dataset", "source")}
    ids = [k for k, v in shared.items() if len(v) > 1]
    shared.pop("source")
    return ids, "  ".join(f"{k}: {v.pop()}" for k, v in shared.items() if len(v) == 1)


def aggregate_table(rows: Sequence[dict[str, Any]], title: str = "vladv report") -> Table:
    """Rich table of :func:`aggregate` rows: R@1 mean ± std over seeds.

    Backbone and dataset move to the caption when every row shares them. Cells are plain text:
    rich markup in a record's names is shown, not interpreted.
    """
    ids, caption = _shared_columns(rows)
    table = Table(title=Text(title), caption=Text(caption) if caption else None, title_style="bold")
    for col in (
        *ids,
        "defense",
        "attack",
        "seeds",
        "clean TR@1",
        "clean IR@1",
        "adv TR@1",
        "adv IR@1",
        "ASR TR",
        "ASR IR",
    ):
        table.add_column(col, justify="right" if "@" in col or "ASR" in col else "left")
    for r in rows:
        table.add_row(*(Text(str(c)) for c in _table_cells(r, ids)))
    return table


def _table_cells(r: dict[str, Any], ids: Sequence[str]) -> list[str]:
    """One row of the summary table: ids, defense, attack, seeds, R@1 and ASR (mean±std)."""
    return [
        *(r[k] for k in ids),
        r["defense"],
        r["attack_label"],
        str(len(r["seeds"])),
        *(
            _pm(r, k)
            for k in (
                "clean_tr_r1",
                "clean_ir_r1",
                "adversarial_tr_r1",
                "adversarial_ir_r1",
                "asr_tr_r1_conditional",
                "asr_ir_r1_conditional",
            )
        ),
    ]


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    if not rows:
        path.write_text("")
        return path
    fields = list(rows[0])
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()}
            )
    return path


def _pair(row: dict[str, Any] | None, tr: str, ir: str, seeds: int = 0) -> str:
    """``TR / IR``, each mean±std; `` (n=k)`` where the row has k seeds of the table's ``seeds``."""
    fewer = row is not None and 0 < len(row["seeds"]) != seeds > 0
    return f"{_pm(row, tr)} / {_pm(row, ir)}" + (f" (n={len(row['seeds'])})" if fewer else "")


def _md(text: Any) -> str:
    """A record's text in a Markdown table cell: HTML-escaped, pipes escaped."""
    return esc(text).replace("|", "\\|")


def _md_table(
    defenses: Sequence[str], columns: Sequence[str], value: Callable[[str, str], str]
) -> list[str]:
    lines = [
        "| defense | " + " | ".join(map(_md, columns)) + " |",
        "| --- " * (len(columns) + 1) + "|",
    ]
    return lines + [
        f"| {_md(d)} | " + " | ".join(value(d, c) for c in columns) + " |" for d in defenses
    ]


def markdown_tables(rows: Sequence[dict[str, Any]]) -> str:
    """Defenses × attacks Markdown tables (R@1, SGA's conditional ASR@1 and Co-Attack's ΔR@1;
    TR / IR, mean±std over seeds)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["backbone"], r["dataset"])].append(r)
    out = []
    for (backbone, dataset), group in groups.items():
        defenses = list(dict.fromkeys(r["defense"] for r in group))
        attacks = list(dict.fromkeys(r["attack_label"] for r in group if r["attack"] != "none"))
        cell = {(r["defense"], r["attack_label"]): r for r in group}
        first = {d: next(r for r in group if r["defense"] == d) for d in defenses}
        seeds = sorted({s for r in group for s in r["seeds"]})
        n = len(seeds)  # a cell of fewer seeds says so: (n=k)
        out.append(f"### {_md(backbone)} on {_md(dataset)} ({seeds_label(seeds)})\n")
        out.append("R@1, TR / IR (%; higher is more robust):\n")
        out += _md_table(
            defenses,
            ["clean", *attacks],
            lambda d, a, first=first, cell=cell, n=n: (
                _pair(first[d], "clean_tr_r1", "clean_ir_r1", n)
                if a == "clean"
                else _pair(cell.get((d, a)), "adversarial_tr_r1", "adversarial_ir_r1", n)
            ),
        )
        out.append(
            "\nSGA's conditional attack success rate ASR@1, TR / IR (%; lower is more robust):\n"
        )
        out += _md_table(
            defenses,
            attacks,
            lambda d, a, cell=cell, n=n: _pair(
                cell.get((d, a)), "asr_tr_r1_conditional", "asr_ir_r1_conditional", n
            ),
        )
        out.append(
            "\nCo-Attack's ASR@1 = clean R@1 − adversarial R@1, TR / IR (points; lower is more "
            "robust):\n"
        )
        out += _md_table(
            defenses,
            attacks,
            lambda d, a, cell=cell, n=n: _pair(
                cell.get((d, a)), "asr_tr_r1_delta", "asr_ir_r1_delta", n
            ),
        )
        out.append("")
    return "\n".join(out)


def record_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows, one per record, for ``records.csv``."""
    records = list(records)
    labels = report_labels(records)
    rows = []
    for rec in records:
        cfg, m = rec["config"], rec["metrics"]
        row = {
            "run_id": rec["run_id"],
            "backbone": cfg["backbone"]["name"],
            "dataset": cfg["dataset"]["name"],
            "defense": labels[rec["run_id"]][2],
            "attack": attack_label(cfg),
            "seed": cfg["seed"],
            "source": labels[rec["run_id"]][1] if isinstance(cfg.get("source"), dict) else "self",
        }
        for block in ("clean", "adversarial"):
            for k in METRICS:
                row[f"{block}_{k}"] = (m.get(block) or {}).get(k)
        for k in ASR:
            row[f"asr_{k}"] = (m.get("asr") or {}).get(k)
        for k in ("max_linf", "max_words_changed"):
            row[k] = (m.get("budget") or {}).get(k)
        rows.append(row)
    return rows


def _mpl(text: str) -> str:
    """A record's text as a matplotlib label: ``$`` would start mathtext (and can fail to parse)."""
    return text.replace("$", r"\$")


def plot_robust_vs_eps(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Robust R@1 (TR, IR) against ε·255, one line per (defense, attack); ε = 0 is clean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[tuple[str, str, str], list[tuple[float, float, float]]] = defaultdict(list)
    clean: dict[tuple[str, str], tuple[float, float]] = {}
    prefix = _model_prefix(rows)
    for r in rows:
        model = prefix(r)
        if r["attack"] == "none" or r["adversarial_tr_r1_mean"] is None:
            clean[(model, r["defense"])] = (r["clean_tr_r1_mean"], r["clean_ir_r1_mean"])
            continue
        if not r["eps"]:  # a text-only attack has no image budget to plot against
            continue
        clean.setdefault((model, r["defense"]), (r["clean_tr_r1_mean"], r["clean_ir_r1_mean"]))
        attack = r["attack"] + part_suffix(r)
        lines[(model, r["defense"], attack)].append(
            (r["eps"] * 255, r["adversarial_tr_r1_mean"], r["adversarial_ir_r1_mean"])
        )
    if not lines:
        return None
    below = len(lines) > 8  # a long legend goes under the plots, in columns
    ncol = 2 if any(m for m, _, _ in lines) else 3
    legend_rows = -(-len(lines) // ncol) if below else 0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2 + 0.2 * legend_rows), sharey=True)
    for (model, defense, attack), pts in lines.items():  # rows are in the grid's order
        pts = sorted(pts)
        base = clean.get((model, defense))
        for ax, idx in zip(axes, (1, 2), strict=True):
            xs = [0.0] + [p[0] for p in pts] if base else [p[0] for p in pts]
            ys = ([base[idx - 1]] if base else []) + [p[idx] for p in pts]
            ax.plot(xs, ys, marker="o", label=_mpl(f"{model}{defense} / {attack}"))
    for ax, name in zip(axes, ("TR@1 (image→text)", "IR@1 (text→image)"), strict=True):
        ax.set_xlabel("ε × 255 (L∞, pixel space)")
        ax.set_title(f"robust {name}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall@1 under attack (%)")
    if below:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=8, ncol=ncol, loc="lower center", frameon=False)
        fig.tight_layout(rect=(0, 0.2 * legend_rows / fig.get_figheight() + 0.02, 1, 1))
    else:
        axes[1].legend(fontsize=8, loc="best")
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _model_prefix(rows: Sequence[dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    """``"backbone on dataset: "`` for a row when the rows hold several models, else ``""``."""
    several = len({(r["backbone"], r["dataset"]) for r in rows}) > 1
    return lambda r: f"{r['backbone']} on {r['dataset']}: " if several else ""


def bar_values(
    rows: Sequence[dict[str, Any]],
) -> tuple[list[tuple[str, str]], list[str], list[str], dict[tuple, tuple[float, ...]]]:
    """What :func:`plot_defense_bars` draws: the (backbone, dataset) models, defenses and attack
    columns ("clean" first), and (model, defense, column) → (TR mean, TR std, IR mean, IR std)."""
    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    attacks = ["clean"] + list(
        dict.fromkeys(r["attack_label"] for r in rows if r["attack"] != "none")
    )
    models = list(dict.fromkeys((r["backbone"], r["dataset"]) for r in rows))
    value: dict[tuple[tuple[str, str], str, str], tuple[float, float, float, float]] = {}
    for r in rows:
        model = (r["backbone"], r["dataset"])
        value.setdefault(
            (model, r["defense"], "clean"),
            (
                r["clean_tr_r1_mean"],
                r["clean_tr_r1_std"] or 0,
                r["clean_ir_r1_mean"],
                r["clean_ir_r1_std"] or 0,
            ),
        )
        if r["attack"] != "none" and r["adversarial_tr_r1_mean"] is not None:
            value[(model, r["defense"], r["attack_label"])] = (
                r["adversarial_tr_r1_mean"],
                r["adversarial_tr_r1_std"] or 0,
                r["adversarial_ir_r1_mean"],
                r["adversarial_ir_r1_std"] or 0,
            )
    return models, defenses, attacks, value


def plot_defense_bars(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Grouped bars: R@1 (mean ± std over seeds) per attack, one bar per defense; one column
    of panels per (backbone, dataset) when the rows hold several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, defenses, attacks, value = bar_values(rows)
    if not defenses:
        return None
    fig, axes = plt.subplots(
        len(models),
        2,
        figsize=(max(10, 1.1 * len(attacks) * max(1, len(defenses)) / 2), 0.6 + 3.2 * len(models)),
        sharey=True,
        squeeze=False,
    )
    width = 0.8 / len(defenses)
    for row, model in enumerate(models):
        for d_i, defense in enumerate(defenses):
            xs = [a_i + (d_i - (len(defenses) - 1) / 2) * width for a_i in range(len(attacks))]
            for col, (m, s) in enumerate(((0, 1), (2, 3))):
                got = [value.get((model, defense, a)) for a in attacks]
                ys = [(v[m] or 0) if v else math.nan for v in got]  # missing: no bar
                es = [(v[s] or 0) if v else math.nan for v in got]
                axes[row][col].bar(xs, ys, width, yerr=es, capsize=2, label=_mpl(defense))
        for col, side in enumerate(("TR@1", "IR@1")):
            ax = axes[row][col]
            ax.grid(axis="y", alpha=0.3)
            ax.set_xticks(range(len(attacks)), [_mpl(a) for a in attacks], rotation=15, ha="right")
            where = f"{model[0]} on {model[1]}: " if len(models) > 1 else ""
            ax.set_title(_mpl(f"{where}{side}"), fontsize=10)
        axes[row][0].set_ylabel("recall@1 (%)")
    axes[0][1].legend(fontsize=8, ncol=min(len(defenses), 3))
    fig.suptitle("retrieval recall@1 per defense, clean and under each attack")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def word_changes(clean: str, adversarial: str) -> list[tuple[bool, str, str]]:
    """``adversarial`` as runs of words against ``clean``: (changed, clean words, adversarial
    words), in order."""
    a, b = clean.split(), adversarial.split()
    return [
        (op != "equal", " ".join(a[i1:i2]), " ".join(b[j1:j2]))
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    ]


def mark_changes(clean: str, adversarial: str) -> str:
    """HTML of ``adversarial`` with the words that differ from ``clean`` in ``<mark>``."""
    return " ".join(
        f"<mark>{esc(new)}</mark>" if changed else esc(new)
        for changed, _, new in word_changes(clean, adversarial)
        if new
    )


STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:70em}.ex img{width:128px;height:128px;"
    "image-rendering:pixelated;border:1px solid #ccc}figure{display:inline-block;margin:"
    "0 .5em 0 0;text-align:center}.ex{display:flex;gap:1em;margin:1em 0;border-bottom:"
    "1px solid #eee}mark{background:#ffb3b3}.clean{color:#777}li{margin:.3em 0}"
    ".plot img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ddd;"
    "padding:.2em .5em;text-align:left}td.num{text-align:right}"
)


def _page(title: str, body: str) -> str:
    """A whole HTML page; ``body`` is HTML whose text from records is already escaped."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _nav(out: Path, here: str) -> str:
    """Links between the files of one report folder (those that exist), relative to the page."""
    names = {
        "index.html": "report",
        "gallery.html": "adversarial examples",
        "robust_vs_eps.png": "robust R@1 vs ε",
        "defenses_attacks.png": "R@1 per defense",
        "summary.md": "summary.md",
        "summary.csv": "summary.csv",
        "records.csv": "records.csv",
        "transfer.csv": "transfer.csv",
        "defense_differences.csv": "defense_differences.csv",
    }
    links = [
        f"<a href='{esc(quote(name))}'>{esc(label)}</a>"
        for name, label in names.items()
        if name != here
        and (name in ("index.html", "gallery.html") or (out / name).is_file())
        and (name != "gallery.html" or here == "index.html")
    ]
    return f"<p class='nav'>{' · '.join(links)}</p>"


def _example_file(root: Path, base: Path, name: Any, suffixes: tuple[str, ...]) -> Path:
    """``base / name`` resolved, if it is a file inside ``root/examples`` (``root`` resolved).

    Raises ValueError for a path outside that folder (refused before anything is read) or of
    another type, FileNotFoundError for a missing file.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"{name!r} is not a file name")
    path = (base / name).resolve()
    if not path.is_relative_to(root / "examples"):
        raise ValueError(f"{name} is outside the records folder's examples/; refused")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{name} is not a {'/'.join(suffixes)} file")
    if not path.is_file():
        raise FileNotFoundError(f"{name} does not exist")
    return path


def _example_html(root: Path, out: Path, base: Path, ex: Any) -> str:
    """One saved example as HTML; its images are copied to the same path under ``out``."""
    if not isinstance(ex, dict) or not isinstance(ex.get("images"), dict):
        raise TypeError("no images")
    clean, adv = ex.get("clean_texts"), ex.get("adv_texts")
    if not (
        isinstance(clean, list)
        and isinstance(adv, list)
        and len(clean) == len(adv)
        and all(isinstance(t, str) for t in clean + adv)
    ):
        raise ValueError("clean_texts and adv_texts are not two lists of as many captions")
    if not _number(ex.get("linf_255")):
        raise ValueError("linf_255 is not a number")
    figures = []
    for kind in KINDS:
        if kind not in ex["images"]:
            continue
        src = _example_file(root, base, ex["images"][kind], IMAGE_SUFFIXES)
        rel = src.relative_to(root)
        if (out / rel).resolve() != src:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / rel)
        figures.append(
            f"<figure><img src='{esc(quote(rel.as_posix()))}' alt='{kind}'>"
            f"<figcaption>{kind}</figcaption></figure>"
        )
    caps = "".join(
        f"<li><span class='clean'>{esc(c)}</span><br>{mark_changes(c, a)}</li>"
        for c, a in zip(clean, adv, strict=True)
    )
    linf = "–" if ex.get("linf_255") is None else f"{ex['linf_255']:.2f}"
    return (
        f"<div class='ex'><div class='imgs'>{''.join(figures)}</div><div>image "
        f"{esc(ex.get('image_id', '?'))}, max |δ| = {linf}/255<ul>{caps}</ul></div></div>"
    )


def write_gallery(
    directory: Path,
    records: Sequence[dict[str, Any]],
    path: Path,
    warn: Callable[[str], None] = lambda message: None,
) -> Path | None:
    """An HTML page of the saved adversarial examples of every record that has them.

    Images are copied from ``directory/examples/`` to the same relative path next to ``path``
    and linked relatively, so the page works from any folder, moved, zipped or over HTTP. An
    index or image outside ``directory/examples/`` is refused and ``warn`` is called with one
    line; records whose examples were not kept are left out silently.
    """
    root, out = Path(directory).resolve(), path.parent
    sections = []
    for rec in records:
        if not rec.get("examples"):
            continue
        try:
            index_file = _example_file(root, root, rec["examples"], (".json",))
            index = json.loads(index_file.read_text())
        except FileNotFoundError:
            continue
        except (ValueError, OSError) as exc:
            warn(f"skipped the examples of {rec['run_id']}: {exc}")
            continue
        if not isinstance(index, dict) or not isinstance(index.get("examples"), list):
            warn(f"skipped the examples of {rec['run_id']}: {index_file} lists no examples")
            continue
        rows = []
        for n, ex in enumerate(index["examples"]):
            try:
                rows.append(_example_html(root, out, index_file.parent, ex))
            except (ValueError, TypeError, OSError) as exc:
                warn(f"skipped example {n} of {rec['run_id']}: {exc}")
        cfg = rec["config"]
        sections.append(
            f"<h2>{esc(defense_label(cfg))} · {esc(attack_label(cfg))} · seed "
            f"{esc(cfg['seed'])}</h2>" + "".join(rows)
        )
    if not sections:
        return None
    path.write_text(
        _page(
            "vladv adversarial examples",
            (
                f"<h1>Adversarial examples</h1>{_nav(out, path.name)}"
                "<p>Perturbations are magnified to "
                "the full gray range (gray = 0); changed words are <mark>marked</mark>.</p>"
                + "".join(sections)
            ),
        )
    )
    return path


def _config_html(
    directory: Path,
    grid: dict[str, Any] | None,
    records: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
) -> str:
    """The experiment's configuration: the manifest's grid, else what the records share."""

    def names(key: str) -> list[str]:
        return sorted({r["config"][key]["name"] for r in records})

    info: dict[str, Any] = {"records": f"{len(records)} in {directory}"}
    if grid:
        info.update(grid)
    else:
        info.update(
            {
                "backbones": names("backbone"),
                "datasets": names("dataset"),
                "defenses": list(dict.fromkeys(r["defense"] for r in rows)),
                "attacks": list(dict.fromkeys(r["attack_label"] for r in rows)),
                "seeds": sorted({r["config"]["seed"] for r in records}),
            }
        )
    versions = [r.get("versions") if isinstance(r.get("versions"), dict) else {} for r in records]
    info["vladv"] = sorted({f"{v.get('vladv')} ({v.get('vladv_commit')})" for v in versions})
    runtimes = [r["config"].get("runtime") or {} for r in records]
    where = {f"{rt.get('cpu')}, {rt.get('threads')} threads" for rt in runtimes if "threads" in rt}
    if where:  # schema ≥ 5: float results depend on the CPU and the thread count
        info["computed on"] = sorted(where)

    def text(value: Any) -> str:
        if isinstance(value, list):
            return ", ".join(map(str, value)) or "–"
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else "–"
        return str(value)

    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(text(v))}</td></tr>" for k, v in info.items())
    return f"<h2>Configuration</h2><table class='config'>{cells}</table>"


def write_index(
    path: Path,
    directory: Path,
    grid: dict[str, Any] | None,
    records: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    transfer_plots: Mapping[str, Path] | None = None,
    differences_html: str = "",
) -> Path:
    """``index.html``: configuration, the summary table, the defense differences, the plots and
    links to every file."""
    out = path.parent
    ids, caption = _shared_columns(rows)
    head = [
        *ids,
        "defense",
        "attack",
        "seeds",
        "clean TR@1",
        "clean IR@1",
        "adv TR@1",
        "adv IR@1",
        "ASR TR",
        "ASR IR",
    ]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if i >= len(ids) + 2 else ''}>{esc(c)}</td>"
            for i, c in enumerate(_table_cells(r, ids))
        )
        + "</tr>"
        for r in rows
    )
    table = (
        f"<h2>Summary</h2><p>R@1 and SGA's conditional ASR@1 (%), mean ± std over seeds. "
        f"{esc(caption)}</p><table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr>"
        f"{body}</table>"
    )
    plots = "".join(
        f"<figure class='plot'><img src='{name}.png' alt='{esc(label)}'>"
        f"<figcaption>{esc(label)}</figcaption></figure>"
        for name, label in PLOTS.items()
        if (out / f"{name}.png").is_file()
    )
    plots += "".join(
        f"<figure class='plot'><img src='{esc(quote(p.name))}' alt='{esc(label)}'>"
        f"<figcaption>{esc(label)} (source × target ASR@1)</figcaption></figure>"
        for label, p in (transfer_plots or {}).items()
    )
    gallery = (
        "<p><a href='gallery.html'>Adversarial examples</a> (clean and adversarial images, "
        "perturbations, changed words)</p>"
        if (out / "gallery.html").is_file()
        else "<p>No saved adversarial examples (run with <code>--save-examples</code>).</p>"
    )
    title = f"vladv report: {grid['name']}" if grid and grid.get("name") else "vladv report"
    path.write_text(
        _page(
            title,
            f"<h1>{esc(title)}</h1>{_nav(out, path.name)}"
            + _config_html(directory, grid, records, rows)
            + table
            + differences_html
            + (f"<h2>Plots</h2>{plots}" if plots else "")
            + gallery,
        )
    )
    return path


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def report(directory: str | Path, output: str | Path | None = None) -> dict[str, Any]:
    """Write the report of the records in ``directory``; return the rows, the file paths and
    the warnings (one line per skipped file or example).

    Raises :class:`VladvError` for a missing folder, a folder without usable records, or an
    ``output`` that is a file or cannot be written.
    """
    directory = Path(directory)
    records, warnings = load_report_records(directory)
    out = Path(output) if output is not None else directory / "report"
    if out.exists() and not out.is_dir():
        raise VladvError(f"report output {out} is a file, not a folder")
    inside = (directory / MANIFEST).resolve().is_relative_to(directory.resolve())
    grid = read_manifest(directory) if inside else None
    from vladv.report_defenses import (
        defense_differences,
        defense_differences_html,
        defense_differences_markdown,
    )
    from vladv.report_transfer import (
        plot_transfer,
        transfer_markdown,
        transfer_rows,
        transfer_summary,
        transfer_summary_markdown,
    )

    rows = aggregate(records, grid)
    white = [r for r in rows if r["source"] == "self"]  # the white-box tables and plots
    order = grid_order(grid)
    differences = defense_differences(records, order)
    transfer = transfer_rows(records, attack_label, _mean_std)
    summary = transfer_summary(records, attack_label, _mean_std)
    records = sorted(
        records,
        key=lambda r: (
            *order(defense_label(r["config"]), r["config"]["attack"]["name"]),
            r["config"]["seed"],
        ),
    )
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = {
            "summary_csv": write_csv(out / "summary.csv", rows),
            "records_csv": write_csv(out / "records.csv", record_rows(records)),
            "summary_md": _write_text(
                out / "summary.md",
                markdown_tables(white)
                + "\n"
                + transfer_markdown(transfer, _md, _pm)
                + ("\n" + transfer_summary_markdown(summary, _md, _pm) if summary["rows"] else "")
                + ("\n" + defense_differences_markdown(differences) if differences else ""),
            ),
            "robust_vs_eps": plot_robust_vs_eps(white, out / "robust_vs_eps.png"),
            "defenses_attacks": plot_defense_bars(white, out / "defenses_attacks.png"),
            "gallery": write_gallery(directory, records, out / "gallery.html", warnings.append),
        }
        plots = plot_transfer(transfer, out, _mpl)
        files.update({f"transfer_{i}": p for i, p in enumerate(plots.values())})
        if transfer:
            files["transfer_csv"] = write_csv(out / "transfer.csv", transfer)
        if differences:
            files["differences_csv"] = write_csv(out / "defense_differences.csv", differences)
        files["index"] = write_index(
            out / "index.html",
            directory,
            grid,
            records,
            rows,
            plots,
            defense_differences_html(differences),
        )
    except OSError as exc:
        raise VladvError(f"cannot write the report to {out}: {exc}") from None
    return {
        "rows": rows,
        "records": len(records),
        "warnings": warnings,
        "files": {k: str(v) for k, v in files.items() if v is not None},
    }

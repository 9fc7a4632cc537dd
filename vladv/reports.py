"""Reports: pure functions of result records → table, CSV, PNG plots and an HTML gallery.

``vladv report DIR`` writes into ``DIR/report/``:

- ``summary.csv``: one row per (backbone, dataset, defense+augmenters, attack, attack options)
  with mean and std over seeds of clean/adversarial R@1/5/10, RSUM and both ASRs;
- ``records.csv``: one row per record;
- ``summary.md``: Markdown tables (defenses × attacks) of R@1 and SGA's ASR, mean ± std over
  seeds, ready for a paper or a README;
- ``robust_vs_eps.png``: robust TR@1 and IR@1 against ε (·255) per defense and attack;
- ``defenses_attacks.png``: grouped bars of R@1 per defense under each attack (clean included);
- ``gallery.html``: saved adversarial examples (clean, adversarial, magnified perturbation, the
  caption with changed words marked), when runs were made with ``--save-examples``.
"""

from __future__ import annotations

import csv
import difflib
import html
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from vladv.results import defense_label, load_records, read_manifest

METRICS = ("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "rsum")
ASR = ("tr_r1_conditional", "ir_r1_conditional", "tr_r1_delta", "ir_r1_delta")


def attack_label(config: dict[str, Any]) -> str:
    """``pgd`` or ``pgd ε=4/255`` (the ε of image attacks is part of the label)."""
    threat = config["attack"].get("threat_model") or {}
    if threat.get("eps"):
        return f"{config['attack']['name']} ε={round(threat['eps'] * 255, 2):g}/255"
    return config["attack"]["name"]


def _group_key(rec: dict[str, Any]) -> tuple:
    cfg = rec["config"]
    opts = json.dumps(cfg["attack"]["options"], sort_keys=True)
    return (cfg["backbone"]["name"], cfg["dataset"]["name"], defense_label(cfg),
            cfg["attack"]["name"], opts)


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def grid_order(grid: dict[str, Any] | None) -> Callable[[str, str], tuple]:
    """Sort key of (defense label, attack name): the grid's order, else ``none`` first, by name."""
    rank = {axis: {name: i for i, name in enumerate((grid or {}).get(axis) or [])}
            for axis in ("defenses", "attacks")}

    def position(axis: str, name: str) -> tuple[int, str]:
        return rank[axis].get(name, 0 if name == "none" else len(rank[axis]) + 1), name

    return lambda defense, attack: (position("defenses", defense), attack != "none",
                                    position("attacks", attack))


def aggregate(records: Iterable[dict[str, Any]],
              grid: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Mean and std over seeds per (backbone, dataset, defense, attack, attack options).

    Rows follow the order of ``grid``'s defenses and attacks (an experiment manifest's grid) where
    given; otherwise ``none`` first, then by name.
    """
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for rec in sorted(records, key=lambda r: (_group_key(r), r["config"]["seed"], r["run_id"])):
        groups[_group_key(rec)].append(rec)
    rows = []
    for (backbone, dataset, defense, attack, _), recs in groups.items():
        first = recs[0]["config"]
        threat = first["attack"].get("threat_model") or {}
        row: dict[str, Any] = {"backbone": backbone, "dataset": dataset, "defense": defense,
                               "attack": attack, "attack_label": attack_label(first),
                               "eps": threat.get("eps"), "max_words": threat.get("max_words"),
                               "seeds": [r["config"]["seed"] for r in recs],
                               "run_ids": [r["run_id"] for r in recs]}
        for block in ("clean", "adversarial"):
            for m in METRICS:
                mean, std = _mean_std([(r["metrics"].get(block) or {}).get(m) for r in recs])
                row[f"{block}_{m}_mean"], row[f"{block}_{m}_std"] = mean, std
        for a in ASR:
            mean, std = _mean_std([(r["metrics"].get("asr") or {}).get(a) for r in recs])
            row[f"asr_{a}_mean"], row[f"asr_{a}_std"] = mean, std
        rows.append(row)
    order = grid_order(grid)
    rows.sort(key=lambda r: (r["backbone"], r["dataset"], *order(r["defense"], r["attack"]),
                             r["eps"] or 0.0))
    return rows


def _pm(row: dict[str, Any] | None, key: str) -> str:
    """``mean±std`` of ``key`` over the row's seeds (just the mean for one seed)."""
    if row is None or row[f"{key}_mean"] is None:
        return "–"
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    return f"{mean:.1f}" if len(row["seeds"]) < 2 or std is None else f"{mean:.1f}±{std:.1f}"


def aggregate_table(rows: Sequence[dict[str, Any]], title: str = "vladv report") -> Table:
    """Rich table of :func:`aggregate` rows: R@1 mean ± std over seeds.

    Backbone and dataset move to the caption when every row shares them.
    """
    shared = {k: {r[k] for r in rows} for k in ("backbone", "dataset")}
    ids = [k for k, v in shared.items() if len(v) > 1]
    caption = "  ".join(f"{k}: {v.pop()}" for k, v in shared.items() if len(v) == 1)
    table = Table(title=title, caption=caption or None, title_style="bold")
    for col in (*ids, "defense", "attack", "seeds", "clean TR@1", "clean IR@1", "adv TR@1",
                "adv IR@1", "ASR TR", "ASR IR"):
        table.add_column(col, justify="right" if "@" in col or "ASR" in col else "left")
    for r in rows:
        table.add_row(*(r[k] for k in ids), r["defense"], r["attack_label"], str(len(r["seeds"])),
                      _pm(r, "clean_tr_r1"),
                      _pm(r, "clean_ir_r1"),
                      _pm(r, "adversarial_tr_r1"),
                      _pm(r, "adversarial_ir_r1"),
                      _pm(r, "asr_tr_r1_conditional"),
                      _pm(r, "asr_ir_r1_conditional"))
    return table


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    if not rows:
        path.write_text("")
        return path
    fields = list(rows[0])
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else v)
                             for k, v in r.items()})
    return path


def _pair(row: dict[str, Any] | None, tr: str, ir: str) -> str:
    return f"{_pm(row, tr)} / {_pm(row, ir)}"


def _md_table(defenses: Sequence[str], columns: Sequence[str],
              value: Callable[[str, str], str]) -> list[str]:
    lines = ["| defense | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    return lines + [f"| {d} | " + " | ".join(value(d, c) for c in columns) + " |" for d in defenses]


def markdown_tables(rows: Sequence[dict[str, Any]]) -> str:
    """Defenses × attacks Markdown tables (R@1 and SGA's ASR@1, TR / IR, mean±std over seeds)."""
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
        seed_text = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
        out.append(f"### {backbone} on {dataset} ({seed_text})\n")
        out.append("R@1, TR / IR (%; higher is more robust):\n")
        out += _md_table(defenses, ["clean", *attacks], lambda d, a: (
            _pair(first[d], "clean_tr_r1", "clean_ir_r1") if a == "clean" else
            _pair(cell.get((d, a)), "adversarial_tr_r1", "adversarial_ir_r1")))
        out.append("\nSGA's conditional attack success rate ASR@1, TR / IR (%; lower is more "
                   "robust):\n")
        out += _md_table(defenses, attacks, lambda d, a: _pair(
            cell.get((d, a)), "asr_tr_r1_conditional", "asr_ir_r1_conditional"))
        out.append("")
    return "\n".join(out)


def record_rows(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows, one per record, for ``records.csv``."""
    rows = []
    for rec in records:
        cfg, m = rec["config"], rec["metrics"]
        row = {"run_id": rec["run_id"], "backbone": cfg["backbone"]["name"],
               "dataset": cfg["dataset"]["name"], "defense": defense_label(cfg),
               "attack": attack_label(cfg), "seed": cfg["seed"]}
        for block in ("clean", "adversarial"):
            for k in METRICS:
                row[f"{block}_{k}"] = (m.get(block) or {}).get(k)
        for k in ASR:
            row[f"asr_{k}"] = (m.get("asr") or {}).get(k)
        for k in ("max_linf", "max_words_changed"):
            row[k] = (m.get("budget") or {}).get(k)
        rows.append(row)
    return rows


def plot_robust_vs_eps(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Robust R@1 (TR, IR) against ε·255, one line per (defense, attack); ε = 0 is clean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    clean: dict[str, tuple[float, float]] = {}
    for r in rows:
        if r["attack"] == "none" or r["adversarial_tr_r1_mean"] is None:
            clean[r["defense"]] = (r["clean_tr_r1_mean"], r["clean_ir_r1_mean"])
            continue
        if r["eps"] is None:
            continue
        clean.setdefault(r["defense"], (r["clean_tr_r1_mean"], r["clean_ir_r1_mean"]))
        lines[(r["defense"], r["attack"])].append(
            (r["eps"] * 255, r["adversarial_tr_r1_mean"], r["adversarial_ir_r1_mean"]))
    if not lines:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for (defense, attack), pts in lines.items():  # rows are in the grid's order
        pts = sorted(pts)
        base = clean.get(defense)
        for ax, idx in zip(axes, (1, 2), strict=True):
            xs = [0.0] + [p[0] for p in pts] if base else [p[0] for p in pts]
            ys = ([base[idx - 1]] if base else []) + [p[idx] for p in pts]
            ax.plot(xs, ys, marker="o", label=f"{defense} / {attack}")
    for ax, name in zip(axes, ("TR@1 (image→text)", "IR@1 (text→image)"), strict=True):
        ax.set_xlabel("ε × 255 (L∞, pixel space)")
        ax.set_title(f"robust {name}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall@1 under attack (%)")
    axes[1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_defense_bars(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Grouped bars: R@1 (mean ± std over seeds) per attack, one bar per defense."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    defenses = list(dict.fromkeys(r["defense"] for r in rows))
    attacks = ["clean"] + list(dict.fromkeys(r["attack_label"] for r in rows if r["attack"] != "none"))
    if not defenses:
        return None
    value: dict[tuple[str, str], tuple[float, float, float, float]] = {}
    for r in rows:
        value.setdefault((r["defense"], "clean"), (r["clean_tr_r1_mean"], r["clean_tr_r1_std"] or 0,
                                                   r["clean_ir_r1_mean"], r["clean_ir_r1_std"] or 0))
        if r["attack"] != "none" and r["adversarial_tr_r1_mean"] is not None:
            value[(r["defense"], r["attack_label"])] = (
                r["adversarial_tr_r1_mean"], r["adversarial_tr_r1_std"] or 0,
                r["adversarial_ir_r1_mean"], r["adversarial_ir_r1_std"] or 0)
    fig, axes = plt.subplots(2, 1, figsize=(max(6, 1.6 * len(attacks) * max(1, len(defenses)) / 3), 7),
                             sharex=True)
    width = 0.8 / len(defenses)
    for d_i, defense in enumerate(defenses):
        xs = [a_i + (d_i - (len(defenses) - 1) / 2) * width for a_i in range(len(attacks))]
        for ax, (m, s) in zip(axes, ((0, 1), (2, 3)), strict=True):
            ys = [value.get((defense, a), (0, 0, 0, 0))[m] or 0 for a in attacks]
            es = [value.get((defense, a), (0, 0, 0, 0))[s] or 0 for a in attacks]
            ax.bar(xs, ys, width, yerr=es, capsize=2, label=defense)
    for ax, name in zip(axes, ("TR@1 (%)", "IR@1 (%)"), strict=True):
        ax.set_ylabel(name)
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(range(len(attacks)), attacks, rotation=20, ha="right")
    axes[0].legend(fontsize=8, ncol=min(len(defenses), 6))
    axes[0].set_title("retrieval recall@1 per defense, clean and under each attack")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def mark_changes(clean: str, adversarial: str) -> str:
    """HTML of ``adversarial`` with the words that differ from ``clean`` in ``<mark>``."""
    a, b = clean.split(), adversarial.split()
    out = []
    for op, _, _, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        words = " ".join(html.escape(w) for w in b[j1:j2])
        if not words:
            continue
        out.append(words if op == "equal" else f"<mark>{words}</mark>")
    return " ".join(out)


def write_gallery(directory: Path, records: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """An HTML page of the saved adversarial examples of every record that has them."""
    sections = []
    for rec in records:
        if not rec.get("examples"):
            continue
        index_path = directory / rec["examples"]
        if not index_path.exists():
            continue
        index = json.loads(index_path.read_text())
        rel = Path("..") / Path(rec["examples"]).parent
        cfg = rec["config"]
        rows = []
        for ex in index["examples"]:
            caps = "".join(
                f"<li><span class='clean'>{html.escape(c)}</span><br>{mark_changes(c, a)}</li>"
                for c, a in zip(ex["clean_texts"], ex["adv_texts"], strict=True))
            imgs = "".join(f"<figure><img src='{rel / ex['images'][k]}' alt='{k}'>"
                           f"<figcaption>{k}</figcaption></figure>"
                           for k in ("clean", "adversarial", "perturbation"))
            rows.append(f"<div class='ex'><div class='imgs'>{imgs}</div><div>image "
                        f"{ex['image_id']}, max |δ| = {ex['linf_255']:.2f}/255<ul>{caps}</ul>"
                        f"</div></div>")
        sections.append(f"<h2>{html.escape(defense_label(cfg))} · "
                        f"{html.escape(attack_label(cfg))} · seed {cfg['seed']}</h2>"
                        + "".join(rows))
    if not sections:
        return None
    style = ("body{font-family:sans-serif;margin:2em;max-width:70em}img{width:128px;height:128px;"
             "image-rendering:pixelated;border:1px solid #ccc}figure{display:inline-block;margin:"
             "0 .5em 0 0;text-align:center}.ex{display:flex;gap:1em;margin:1em 0;border-bottom:"
             "1px solid #eee}mark{background:#ffb3b3}.clean{color:#777}li{margin:.3em 0}")
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>vladv adversarial "
                    f"examples</title><style>{style}</style></head><body><h1>Adversarial examples"
                    "</h1><p>Perturbations are magnified to the full gray range (gray = 0).</p>"
                    + "".join(sections) + "</body></html>")
    return path


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def report(directory: str | Path, output: str | Path | None = None) -> dict[str, Any]:
    """Write the report of the records in ``directory``; return the rows and the file paths."""
    directory = Path(directory)
    records = load_records(directory)
    out = Path(output) if output is not None else directory / "report"
    out.mkdir(parents=True, exist_ok=True)
    grid = read_manifest(directory)
    rows = aggregate(records, grid)
    order = grid_order(grid)
    records = sorted(records, key=lambda r: (
        *order(defense_label(r["config"]), r["config"]["attack"]["name"]), r["config"]["seed"]))
    files = {"summary_csv": write_csv(out / "summary.csv", rows),
             "records_csv": write_csv(out / "records.csv", record_rows(records)),
             "summary_md": _write_text(out / "summary.md", markdown_tables(rows)),
             "robust_vs_eps": plot_robust_vs_eps(rows, out / "robust_vs_eps.png"),
             "defenses_attacks": plot_defense_bars(rows, out / "defenses_attacks.png"),
             "gallery": write_gallery(directory, records, out / "gallery.html")}
    return {"rows": rows, "records": len(records),
            "files": {k: str(v) for k, v in files.items() if v is not None}}

"""The transfer part of a report: source × target matrices per attack, from records alone.

A record's target is its backbone (with options), defense and augmenters; its source is
``config.source`` (null = white-box: the target itself). Models are labelled as short model specs
(``clip(model=vladv-tiny-align)/mat+eda``) naming only the options whose value differs from
the plugin's default (where a model of the folder holds it; else from the value most of the
folder's models share), so the default model reads ``clip`` and labels stay short and distinct.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vladv.results import seeds_label

CONVENTIONS = (
    (
        "conditional",
        "SGA's conditional ASR@1: % of queries correct before the attack that fail after it",
    ),
    ("delta", "Co-Attack's ASR@1: clean R@1 − adversarial R@1 (points)"),
)


def _part(cfg: Mapping[str, Any], source: bool) -> dict[str, Any]:
    """The model part (backbone, defense, augmenters) of a record's target or source."""
    src = cfg.get("source") if source else None
    return src if isinstance(src, dict) else cfg


def _options(block: Any) -> dict[str, Any]:
    opts = block.get("options") if isinstance(block, dict) else None
    return opts if isinstance(opts, dict) else {}


def _value(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _declared_default(kind: str, name: str, option: str) -> str | None:
    """The JSON value of a registered plugin's default for ``option`` (None: unknown here)."""
    from vladv.errors import VladvError
    from vladv.options import describe_options
    from vladv.plugins import get_spec

    try:
        rows = describe_options(get_spec(kind, name).options)
    except VladvError:  # a plugin not installed (or ambiguous) here: the records alone decide
        return None
    return next((_value(r["default"]) for r in rows if r["name"] == option), None)


def _usual(key: tuple[str, str, str], values: Counter[str]) -> str:
    """The value of option ``key`` = (kind, plugin, option) that a label leaves unsaid."""
    default = _declared_default(*key)
    return default if default in values else values.most_common(1)[0][0]


def _blocks(part: Mapping[str, Any], kinds: Sequence[str]) -> list[tuple[str, Mapping[str, Any]]]:
    """(kind, block) of a model part's backbone, defense and augmenters, in that order."""
    out: list[tuple[str, Mapping[str, Any]]] = []
    for kind in kinds:
        if kind == "augmenter":
            augs = part.get("augmenters") or []
            out += [("augmenter", a) for a in augs if isinstance(a, dict)]
        elif isinstance(part.get(kind), dict):
            out.append((kind, part[kind]))
    return out


def _unsaid(parts: Iterable[Mapping[str, Any]], kinds: Sequence[str]) -> dict[tuple, str]:
    """Per (kind, plugin, option) whose value differs between the distinct models ``parts``:
    the value a label leaves unsaid (the plugin's declared default where some model holds it,
    else the most common value, first seen on ties)."""
    models: dict[str, Mapping[str, Any]] = {}
    for p in parts:
        models.setdefault(_value(p), p)
    counts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for p in models.values():
        for kind, block in _blocks(p, kinds):
            for k, v in _options(block).items():
                counts[(kind, str(block.get("name", "?")), k)][_value(v)] += 1
    return {key: _usual(key, c) for key, c in counts.items() if len(c) > 1}


def _text(part: Mapping[str, Any], kinds: Sequence[str], unsaid: Mapping[tuple, str]) -> str:
    """``clip(model=vladv-tiny-align)/mat(eps=0.1)+caption(pretrain_steps=1000)``: each block's
    name with the options whose value is not the unsaid one; no ``none`` defense."""
    out, augs = [], []
    for kind, block in _blocks(part, kinds):
        name = str(block.get("name", "?"))
        if kind == "defense" and name == "none":
            continue
        opts = _options(block)
        shown = ", ".join(
            f"{k}={opts[k]}"
            for k in sorted(opts)
            if (kind, name, k) in unsaid and _value(opts[k]) != unsaid[(kind, name, k)]
        )
        (augs if kind == "augmenter" else out).append(name + (f"({shown})" if shown else ""))
    return "/".join(out) + "".join(f"+{a}" for a in augs)


def model_labels(
    records: Iterable[dict[str, Any]], defenses: bool = True
) -> dict[str, tuple[str, str]]:
    """``run_id`` → (target label, source label) for every record (backbones only unless
    ``defenses``)."""
    records = list(records)
    kinds = ("backbone", "defense", "augmenter") if defenses else ("backbone",)
    parts = [_part(r["config"], s) for r in records for s in (False, True)]
    unsaid = _unsaid(parts, kinds)
    return {
        r["run_id"]: (
            _text(_part(r["config"], False), kinds, unsaid),
            _text(_part(r["config"], True), kinds, unsaid),
        )
        for r in records
    }


def defense_labels(
    records: Iterable[dict[str, Any]], backbones: Mapping[str, str]
) -> dict[str, str]:
    """``run_id`` → the label of the record's defense and augmenters (``mat+caption``), naming
    the options that tell apart the models sharing a backbone label (``backbones``: ``run_id`` →
    label) and defense names: the two MATs of a sweep are two rows, never one averaged as if
    over seeds."""
    from vladv.results import defense_label

    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(backbones[r["run_id"]], defense_label(r["config"]))].append(r)
    kinds = ("defense", "augmenter")
    out: dict[str, str] = {}
    for (_, names), recs in groups.items():
        models = ({k: r["config"].get(k) for k in ("defense", "augmenters")} for r in recs)
        unsaid = _unsaid(models, kinds)
        for r in recs:
            out[r["run_id"]] = _text(r["config"], kinds, unsaid) or names
    return out


def transfer_rows(
    records: Sequence[dict[str, Any]], attack_label: Any, mean_std: Any
) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (dataset, attack, source, target): ASRs and adversarial R@1.

    Empty unless some record is a transfer record (a non-null ``config.source``).
    """
    if not any(isinstance(r["config"].get("source"), dict) for r in records):
        return []
    labels = model_labels(records)
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        cfg = rec["config"]
        if cfg["attack"]["name"] == "none":
            continue
        target, source = labels[rec["run_id"]]
        groups[(cfg["dataset"]["name"], attack_label(cfg), source, target)].append(rec)
    rows = []
    for (dataset, attack, source, target), recs in groups.items():
        row: dict[str, Any] = {
            "dataset": dataset,
            "attack": attack,
            "source": source,
            "target": target,
            "seeds": sorted(r["config"]["seed"] for r in recs),
        }
        for conv in ("conditional", "delta"):
            for side in ("tr", "ir"):
                key = f"{side}_r1_{conv}"
                row[f"asr_{key}_mean"], row[f"asr_{key}_std"] = mean_std(
                    [(r["metrics"].get("asr") or {}).get(key) for r in recs]
                )
        for side in ("tr", "ir"):
            row[f"adversarial_{side}_r1_mean"], row[f"adversarial_{side}_r1_std"] = mean_std(
                [(r["metrics"].get("adversarial") or {}).get(f"{side}_r1") for r in recs]
            )
        rows.append(row)
    return rows


SETTINGS = (
    ("white", "white-box, undefended models"),
    ("black", "black-box between undefended models"),
    ("defended", "black-box onto defended targets"),
)


def _setting(cfg: Mapping[str, Any], target: str, source: str) -> str:
    """``white``, ``black`` or ``defended`` (see :data:`SETTINGS`); ``other`` for the rest
    (white-box on a defended model, examples crafted on a defended source)."""

    def defended_part(part: Any) -> bool:
        return isinstance(part, dict) and (part.get("defense") or {}).get("name", "none") != "none"

    defended, src_defended = defended_part(cfg), defended_part(cfg.get("source"))
    if source == target:
        return "other" if defended else "white"
    if src_defended:
        return "other"
    return "defended" if defended else "black"


def transfer_summary(
    records: Sequence[dict[str, Any]], attack_label: Any, mean_std: Any
) -> dict[str, Any]:
    """Per attack: the mean conditional ASR@1 over the (source, target) pairs of each setting
    of :data:`SETTINGS`, computed per seed and then mean ± std over seeds; plus the paired
    per-seed difference of the black-box means between every two attacks.

    Only pairs present in every seed of an attack count, so a seed still running does not move
    the mean by changing which pairs it averages. Returns ``{"rows": [...], "differences":
    [...]}``; both empty without transfer records.
    """
    if not any(isinstance(r["config"].get("source"), dict) for r in records):
        return {"rows": [], "differences": []}
    labels = model_labels(records)
    # (dataset, attack, setting) -> seed -> {(source, target): (tr, ir)}
    cells: dict[tuple[str, str, str], dict[int, dict[tuple[str, str], tuple[Any, Any]]]]
    cells = defaultdict(lambda: defaultdict(dict))
    for rec in records:
        cfg = rec["config"]
        if cfg["attack"]["name"] == "none":
            continue
        target, source = labels[rec["run_id"]]
        asr = rec["metrics"].get("asr") or {}
        setting = _setting(cfg, target, source)
        if setting == "other":
            continue
        key = (cfg["dataset"]["name"], attack_label(cfg), setting)
        cells[key][cfg["seed"]][(source, target)] = (
            asr.get("tr_r1_conditional"),
            asr.get("ir_r1_conditional"),
        )
    per_seed: dict[tuple[str, str, str], dict[int, tuple[float, float]]] = {}
    pairs_used: dict[tuple[str, str, str], int] = {}
    for key, seeds in cells.items():
        common = set.intersection(*(set(p) for p in seeds.values()))
        common = {p for p in common if all(None not in seeds[s][p] for s in seeds)}
        if not common:
            continue
        pairs_used[key] = len(common)
        per_seed[key] = {
            s: tuple(sum(seeds[s][p][i] for p in common) / len(common) for i in (0, 1))
            for s in sorted(seeds)
        }
    rows = []
    attacks = list(dict.fromkeys((d, a) for d, a, _ in per_seed))
    for dataset, attack in attacks:
        row: dict[str, Any] = {"dataset": dataset, "attack": attack}
        for setting, _ in SETTINGS:
            means = per_seed.get((dataset, attack, setting), {})
            part: dict[str, Any] = {
                "seeds": sorted(means),
                "pairs": pairs_used.get((dataset, attack, setting), 0),
            }
            for i, side in enumerate(("tr", "ir")):
                part[f"{side}_mean"], part[f"{side}_std"] = mean_std([m[i] for m in means.values()])
            row[setting] = part
        rows.append(row)
    differences = []
    for dataset, a in attacks:
        for d2, b in attacks:
            if d2 != dataset or a == b:
                continue
            ma = per_seed.get((dataset, a, "black"), {})
            mb = per_seed.get((dataset, b, "black"), {})
            seeds = sorted(set(ma) & set(mb))
            if not seeds:
                continue
            diff: dict[str, Any] = {"dataset": dataset, "attack": a, "other": b, "seeds": seeds}
            for i, side in enumerate(("tr", "ir")):
                diff[f"{side}_mean"], diff[f"{side}_std"] = mean_std(
                    [ma[s][i] - mb[s][i] for s in seeds]
                )
            differences.append(diff)
    return {"rows": rows, "differences": differences}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def transfer_summary_markdown(summary: Mapping[str, Any], md: Any, pm: Any) -> str:
    """The summary of :func:`transfer_summary` as two Markdown tables per dataset (``pm``:
    the report's mean±std formatter of ``{key}_mean``/``{key}_std`` over a row's ``seeds``)."""
    rows, differences = summary.get("rows") or [], summary.get("differences") or []
    if not rows:
        return ""

    out = [
        "## Transfer summary\n",
        "SGA's conditional ASR@1, TR / IR: the mean over each setting's (source, target) pairs, "
        "computed per seed, then mean±std over seeds (pairs: how many pairs each mean "
        "averages).\n",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        group = [r for r in rows if r["dataset"] == dataset]
        out.append(f"### {md(dataset)}\n")
        out.append("| attack | " + " | ".join(md(t) for _, t in SETTINGS) + " |")
        out.append("| --- " * (len(SETTINGS) + 1) + "|")
        for r in group:
            vals = []
            for setting, _ in SETTINGS:
                cell = r[setting]
                vals.append(
                    "–"
                    if not cell["seeds"]
                    else f"{pm(cell, 'tr')} / {pm(cell, 'ir')} "
                    f"({_count(cell['pairs'], 'pair')}, {seeds_label(cell['seeds'])})"
                )
            out.append(f"| {md(r['attack'])} | " + " | ".join(vals) + " |")
        out.append("")
        diffs = [d for d in differences if d["dataset"] == dataset]
        if diffs:
            names = list(dict.fromkeys(d["attack"] for d in diffs))
            by_pair = {(d["attack"], d["other"]): d for d in diffs}
            out.append(
                "Black-box between undefended models, row − column in points (TR / IR), "
                "paired per seed, mean±std over seeds:\n"
            )
            out.append("| row − column | " + " | ".join(map(md, names)) + " |")
            out.append("| --- " * (len(names) + 1) + "|")
            for a in names:
                vals = [
                    "–" if (d := by_pair.get((a, b))) is None else f"{pm(d, 'tr')} / {pm(d, 'ir')}"
                    for b in names
                ]
                out.append(f"| {md(a)} | " + " | ".join(vals) + " |")
            out.append("")
    return "\n".join(out)


def _axes(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Sources and targets: models that attack others first, then by label (deterministic)."""
    crafting = {r["source"] for r in rows if r["source"] != r["target"]}

    def order(models: Iterable[str]) -> list[str]:
        return sorted(set(models), key=lambda m: (m not in crafting, m))

    return order(r["source"] for r in rows), order(r["target"] for r in rows)


def _by_attack(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[(r["dataset"], r["attack"])].append(r)
    return out


def transfer_markdown(rows: Sequence[dict[str, Any]], md: Any, pm: Any) -> str:
    """Source × target Markdown tables per attack, for both ASR conventions (TR / IR)."""
    if not rows:
        return ""
    out = [
        "## Transfer: source (rows) × target (columns)\n",
        "The diagonal (source = target) is white-box. Each cell: TR / IR, mean±std over seeds.\n",
    ]
    for (dataset, attack), group in _by_attack(rows).items():
        sources, targets = _axes(group)
        cell = {(r["source"], r["target"]): r for r in group}
        seeds = sorted({s for r in group for s in r["seeds"]})
        for conv, meaning in CONVENTIONS:
            out.append(
                f"### {md(attack)} on {md(dataset)}: {meaning} (seeds "
                f"{', '.join(map(str, seeds))})\n"
            )
            out.append("| source \\ target | " + " | ".join(map(md, targets)) + " |")
            out.append("| --- " * (len(targets) + 1) + "|")
            for s in sources:
                vals = [
                    f"{pm(cell.get((s, t)), f'asr_tr_r1_{conv}')} / "
                    f"{pm(cell.get((s, t)), f'asr_ir_r1_{conv}')}"
                    for t in targets
                ]
                out.append(f"| {md(s)} | " + " | ".join(vals) + " |")
            out.append("")
    return "\n".join(out)


def plot_transfer(rows: Sequence[dict[str, Any]], folder: Path, mpl: Any) -> dict[str, Path]:
    """One heatmap PNG per attack (``transfer_<n>.png``): both conventions × TR and IR."""
    if not rows:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    files: dict[str, Path] = {}
    for (dataset, attack), group in _by_attack(rows).items():
        sources, targets = _axes(group)
        cell = {(r["source"], r["target"]): r for r in group}
        models = list(dict.fromkeys(sources + targets))  # numbered on the axes, named below
        number = {m: str(i + 1) for i, m in enumerate(models)}
        height = 1.2 + 1.0 * len(sources)
        fig, axes = plt.subplots(
            2, 2, figsize=(3 + 1.3 * len(targets), 2 * height + 0.22 * len(models)), squeeze=False
        )
        for i, (conv, _) in enumerate(CONVENTIONS):
            for j, side in enumerate(("tr", "ir")):
                key = f"asr_{side}_r1_{conv}_mean"
                grid = np.array(
                    [
                        [
                            np.nan if (r := cell.get((s, t))) is None or r[key] is None else r[key]
                            for t in targets
                        ]
                        for s in sources
                    ],
                    dtype=float,
                )
                ax = axes[i][j]
                ax.imshow(grid, cmap="Reds", vmin=0, vmax=100, aspect="auto")
                for (y, x), v in np.ndenumerate(grid):
                    if not np.isnan(v):
                        ax.text(
                            x,
                            y,
                            f"{v:.0f}",
                            ha="center",
                            va="center",
                            fontsize=8,
                            color="white" if v > 60 else "black",
                        )
                ax.set_xticks(range(len(targets)), [number[t] for t in targets], fontsize=8)
                ax.set_yticks(range(len(sources)), [number[s] for s in sources], fontsize=8)
                ax.set_title(f"{'TR' if side == 'tr' else 'IR'} ASR@1, {conv}", fontsize=9)
                ax.set_xlabel("target", fontsize=8)
                ax.set_ylabel("source", fontsize=8)
        fig.suptitle(mpl(f"{attack} on {dataset}: transfer (%)"), fontsize=10)
        key = "\n".join(mpl(f"{number[m]}: {m}") for m in models)
        share = 0.22 * len(models) / fig.get_figheight()
        fig.text(0.02, 0.01, key, fontsize=7, va="bottom", family="monospace")
        fig.tight_layout(rect=(0, share + 0.02, 1, 0.96))
        stem = "transfer_" + re.sub(r"[^A-Za-z0-9.-]+", "_", f"{attack} {dataset}").strip("_")
        path = folder / f"{stem}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files[f"transfer: {attack} on {dataset}"] = path
    return files

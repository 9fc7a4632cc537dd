"""Rendering for people: the rich tables ``vladv run`` prints and the example images it saves.

Records themselves (schema, writing, loading) are :mod:`vladv.results`; the report built from a
folder of records (tables, plots, gallery) is :mod:`vladv.reports`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from rich.markup import escape
from rich.table import Table

from vladv.cache import atomic_write_json
from vladv.results import defense_label, part_suffix


def save_example_images(
    output: Path, rid: str, examples: list[dict[str, Any]], threat: dict[str, Any] | None
) -> str:
    """Write clean/adversarial/magnified-perturbation PNGs and an index; return its path."""
    from PIL import Image

    folder = Path(output) / "examples" / rid
    folder.mkdir(parents=True, exist_ok=True)
    eps = (threat or {}).get("eps") or 0.0
    rows = []
    for n, ex in enumerate(examples):
        clean, adv = ex["clean_image"].float(), ex["adv_image"].float()
        delta = adv - clean
        scale = max(float(delta.abs().max()), eps * 255, 1e-8)
        magnified = (127.5 + 127.5 * delta / scale).clamp(0, 255)
        files = {}
        for kind, img in (("clean", clean), ("adversarial", adv), ("perturbation", magnified)):
            name = f"{n:03d}_{kind}.png"
            array = img.round().to(torch.uint8).permute(1, 2, 0).numpy()
            Image.fromarray(array).save(folder / name)
            files[kind] = name
        rows.append(
            {
                "image_id": ex["image_id"],
                "images": files,
                "clean_texts": ex["clean_texts"],
                "adv_texts": ex["adv_texts"],
                "linf_255": float(delta.abs().max()),
            }
        )
    atomic_write_json(
        folder / "index.json", {"run_id": rid, "threat_model": threat, "examples": rows}
    )
    return f"examples/{rid}/index.json"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _pair(block: dict[str, Any] | None, a: str, b: str) -> str:
    return "–" if not block else f"{_fmt(block.get(a))}/{_fmt(block.get(b))}"


def _common(records: list[dict[str, Any]], key: str) -> str | None:
    values = {
        str(r["config"][key]["name"] if isinstance(r["config"][key], dict) else r["config"][key])
        for r in records
    }
    return values.pop() if len(values) == 1 else None


def summary_table(records: Iterable[dict[str, Any]], title: str = "vladv results") -> Table:
    """One row per record: clean R@K, or clean vs adversarial R@1 with both ASRs and budgets."""
    records = list(records)
    shared = {k: _common(records, k) for k in ("backbone", "dataset", "seed")} if records else {}
    caption = "  ".join(f"{k}: {v}" for k, v in shared.items() if v is not None)
    table = Table(title=title, caption=caption or None, title_style="bold")
    id_cols = [k for k in ("backbone", "dataset", "seed") if shared.get(k) is None]
    for col in id_cols:
        table.add_column(col, style="cyan")
    table.add_column("defense", style="magenta")
    attacked = any("adversarial" in r["metrics"] for r in records)
    if attacked:
        table.add_column("attack", style="red")
        for col in ("clean TR/IR@1", "adv TR/IR@1", "ASR SGA", "ASR Δ", "ε·255", "words"):
            table.add_column(
                col, justify="right", no_wrap=True, min_width=5 if col in ("ε·255", "words") else 11
            )
    else:
        for col in ("TR@1", "TR@5", "TR@10", "IR@1", "IR@5", "IR@10", "RSUM"):
            table.add_column(col, justify="right", no_wrap=True, min_width=5)
    for rec in records:
        cfg, m = rec["config"], rec["metrics"]
        ids = [str(cfg[k]["name"] if isinstance(cfg[k], dict) else cfg[k]) for k in id_cols]
        clean = m["clean"]
        if attacked:
            budget = m.get("budget") or {}
            row = [
                escape(cfg["attack"]["name"] + part_suffix(cfg["attack"])),
                _pair(clean, "tr_r1", "ir_r1"),
                _pair(m.get("adversarial"), "tr_r1", "ir_r1"),
                _pair(m.get("asr"), "tr_r1_conditional", "ir_r1_conditional"),
                _pair(m.get("asr"), "tr_r1_delta", "ir_r1_delta"),
                f"{budget['max_linf'] * 255:.2f}" if budget.get("max_linf") is not None else "–",
                str(budget.get("max_words_changed", "–")),
            ]
        else:
            row = [
                _fmt(clean[k])
                for k in ("tr_r1", "tr_r5", "tr_r10", "ir_r1", "ir_r5", "ir_r10", "rsum")
            ]
        table.add_row(*ids, defense_label(cfg), *row)
    return table


def dry_run_table(cells: list[Mapping[str, Any]], res: Any = None) -> Table:
    """The planned cells of a grid, one row each (``res``: the run's
    :class:`~vladv.grid.Resolver`)."""
    from vladv.experiment import source_label

    done = sum(bool(c.get("done")) for c in cells)
    title = f"{len(cells)} planned run(s)" + (f", {done} already done (skipped)" if done else "")
    table = Table(title=title)
    transfer = any(c.get("source") for c in cells)
    for col in (
        "run id",
        "backbone",
        "dataset",
        "defense",
        "attack",
        "attack options",
        "seed",
        *(("source",) if transfer else ()),
        "status",
    ):
        table.add_column(col)
    for c in cells:
        opts = escape(", ".join(f"{k}={v}" for k, v in c["attack"]["options"].items()))
        model = source_label({**c, "augmenters": []}, res).partition("/")[0]
        src = (
            (escape(source_label(c["source"], res)) if c.get("source") else "self",)
            if transfer
            else ()
        )
        table.add_row(
            c["run_id"],
            escape(model),
            c["dataset"]["name"],
            defense_label(c),
            escape(c["attack"]["name"] + part_suffix(c["attack"])),
            opts,
            str(c["seed"]),
            *src,
            "[green]done[/]" if c.get("done") else "to run",
        )
    return table

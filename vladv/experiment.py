"""The runner: backbone × defense × augmenters × attacks × dataset × seed → result records.

Everything is resolved (plugin names, options) before any heavy work starts, so a typo fails in
milliseconds. Cells whose record already exists in the output directory are skipped (resume).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vladv.backbone import Backbone
from vladv.cache import config_hash
from vladv.console import get_console
from vladv.errors import OptionError, VladvError
from vladv.evaluation import encode_clean, evaluate_attack
from vladv.options import option_fields, options_to_dict, resolve_options
from vladv.plugins import get_registry, plugin_version
from vladv.results import build_record, load_record, record_path, run_id, write_record
from vladv.types import Context, ImageTextDataset, PluginSpec

NONE = "none"


@dataclass(frozen=True)
class Choice:
    """A plugin picked for a run, with its resolved options."""

    kind: str
    name: str
    spec: PluginSpec | None
    options: Any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": options_to_dict(self.options) if self.spec else {}}

    def build(self, ctx: Context, *args: Any) -> Any:
        assert self.spec is not None
        return self.spec.factory(self.options, ctx, *args)


def resolve(kind: str, name: str, given: Mapping[str, Any] | None = None) -> Choice:
    """Look up a plugin and resolve its options; ``none`` is the empty choice."""
    if name == NONE and kind in ("attack", "defense"):
        if given:
            raise OptionError(f"{kind} 'none' takes no options; got {', '.join(given)}")
        return Choice(kind, NONE, None, None)
    spec = get_registry().get(kind, name)
    return Choice(kind, name, spec, resolve_options(f"{kind} '{name}'", spec.options, given))


def route_options(kind: str, names: Sequence[str], given: Mapping[str, Any] | None,
                  ) -> dict[str, dict[str, Any]]:
    """Split ``--attack-opt`` style options over several plugins.

    ``name.key=value`` goes to that plugin; a plain ``key=value`` goes to every plugin that has
    the option (and is an error if none has it).
    """
    routed: dict[str, dict[str, Any]] = {n: {} for n in names}
    registry = get_registry()
    for key, value in (given or {}).items():
        target, dot, sub = key.partition(".")
        if dot and target in routed:
            routed[target][sub] = value
            continue
        if dot:
            raise OptionError(f"option '{key}' names {kind} '{target}', which is not part of this "
                              f"run ({', '.join(names) or 'none'})")
        takers = []
        for n in names:
            if n == NONE:
                continue
            fields = {f.name for f, _ in option_fields(registry.get(kind, n).options)}
            if key.replace("-", "_") in fields:
                takers.append(n)
        if not takers:
            if len([n for n in names if n != NONE]) == 1:
                routed[[n for n in names if n != NONE][0]][key] = value  # let it report the key
                continue
            raise OptionError(f"no {kind} in this run ({', '.join(names)}) has an option '{key}'")
        for n in takers:
            routed[n][key] = value
    return routed


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def make_context(device: str | None = None, precision: str = "fp32", seed: int = 0,
                 num_workers: int = 0, progress: bool = True, console: Any = None) -> Context:
    if precision not in ("fp32", "bf16", "fp16"):
        raise OptionError(f"precision must be fp32, bf16 or fp16; got {precision!r}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise OptionError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("device 'cuda' requested but CUDA is not available here; use --device cpu")
    return Context(device=dev, precision=precision, seed=seed,  # type: ignore[arg-type]
                   num_workers=num_workers, progress=progress, console=console)


def run(*, backbone: str = "clip", dataset: str = "synthetic-aerial", defense: str = NONE,
        attack: str | Sequence[str] = NONE, augment: Sequence[str] = (), seed: int = 0,
        device: str | None = None, precision: str = "fp32", batch_size: int = 32,
        output: str | Path | None = None, backbone_options: Mapping[str, Any] | None = None,
        dataset_options: Mapping[str, Any] | None = None,
        attack_options: Mapping[str, Any] | None = None,
        defense_options: Mapping[str, Any] | None = None,
        augment_options: Mapping[str, Any] | None = None, num_workers: int = 0,
        progress: bool = True, force: bool = False, keep_examples: int = 0,
        console: Any = None) -> list[dict[str, Any]]:
    """Evaluate one backbone (optionally defended) against each attack; return the records.

    Options are dicts of ``key: value`` (strings like ``"2/255"`` or typed values); for several
    attacks, ``"sga.eps"`` targets one attack and ``"eps"`` every attack that has it.
    """
    if batch_size < 1:
        raise OptionError(f"batch size must be at least 1; got {batch_size}")
    attacks = [attack] if isinstance(attack, str) else list(attack) or [NONE]
    if len(set(attacks)) != len(attacks):
        raise OptionError(f"attack listed twice: {', '.join(attacks)}")
    ctx = make_context(device, precision, seed, num_workers, progress, console)
    console = get_console(ctx)
    bb = resolve("backbone", backbone, backbone_options)
    ds = resolve("dataset", dataset, dataset_options)
    df = resolve("defense", defense, defense_options)
    aug_opts = route_options("augmenter", list(augment), augment_options)
    augs = [resolve("augmenter", a, aug_opts[a]) for a in augment]
    atk_opts = route_options("attack", attacks, attack_options)
    atks = [resolve("attack", a, atk_opts[a]) for a in attacks]

    base_identity = {
        "backbone": bb.to_dict(), "dataset": ds.to_dict(), "defense": df.to_dict(),
        "augmenters": [a.to_dict() for a in augs], "seed": seed, "precision": precision,
        "batch_size": batch_size,
    }
    cells = []
    for a in atks:
        attack_obj = a.build(ctx) if a.spec is not None else None  # factories are cheap
        threat = attack_obj.threat_model.to_dict() if attack_obj is not None else None
        identity = {**base_identity, "attack": {**a.to_dict(), "threat_model": threat}}
        cells.append((a, attack_obj, identity, run_id(identity)))
    output = Path(output) if output is not None else None
    records: dict[str, dict[str, Any]] = {}
    if output is not None and not force:
        for *_, rid in cells:
            if record_path(output, rid).exists():
                records[rid] = load_record(record_path(output, rid))
                console.print(f"[dim]skipping finished run {rid} (record exists)[/]")
    pending = [c for c in cells if c[3] not in records]
    if not pending:
        return [records[rid] for *_, rid in cells]

    seed_everything(seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    test_ds: ImageTextDataset = ds.build(ctx, "test")
    timings["data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model: Backbone = bb.build(ctx).to(ctx.device).eval()
    timings["backbone"] = time.perf_counter() - t0
    model, timings["defense"] = _apply_defense(model, df, augs, ds, bb, ctx, seed)
    model.eval()
    clean = encode_clean(model, test_ds, ctx, batch_size)
    timings["clean"] = clean.seconds
    runtime = {"device": str(ctx.device), "num_workers": num_workers}
    versions = {"backbone": plugin_version("backbone", bb.name),
                "dataset": plugin_version("dataset", ds.name)}
    if df.spec is not None:
        versions["defense"] = plugin_version("defense", df.name)
    for a in augs:
        versions[f"augmenter:{a.name}"] = plugin_version("augmenter", a.name)

    for choice, attack_obj, identity, rid in pending:
        metrics: dict[str, Any] = {"clean": clean.metrics}
        cell_timings = dict(timings)
        cell_versions = dict(versions)
        if attack_obj is not None:
            cell_versions["attack"] = plugin_version("attack", choice.name)
            seed_everything(seed)
            result = evaluate_attack(model, test_ds, attack_obj, choice.name, clean, ctx,
                                     batch_size, keep_examples)
            metrics.update(adversarial=result.gallery.metrics, asr=result.asr,
                           budget=result.budget)
            cell_timings["attack"] = result.seconds
        record = build_record(identity=identity, runtime=runtime, plugin_versions=cell_versions,
                              data=test_ds.describe(), model=model.identity(), metrics=metrics,
                              timings=cell_timings)
        if output is not None:
            write_record(output, record)
        records[rid] = record
    return [records[rid] for *_, rid in cells]


def _apply_defense(model: Backbone, df: Choice, augs: list[Choice], ds: Choice, bb: Choice,
                   ctx: Context, seed: int) -> tuple[Backbone, float]:
    """Train (or load from the cache) the defended backbone; ``none`` returns it as it is."""
    if df.spec is None:
        if augs:
            raise OptionError("augmenters only apply to a training defense; add --defense")
        return model, 0.0
    start = time.perf_counter()
    key = config_hash({"backbone": bb.to_dict(), "model": model.identity(),
                       "dataset": ds.to_dict(), "defense": df.to_dict(),
                       "augmenters": [a.to_dict() for a in augs], "seed": seed,
                       "precision": ctx.precision})
    folder = ctx.cache_dir("defenses", f"{df.name}-{key}")
    final = folder / "model.safetensors"
    console = get_console(ctx)
    if final.exists():
        console.print(f"[dim]using cached {df.name} checkpoint {final}[/]")
        model.load_weights(final)
        return model, time.perf_counter() - start
    train_ds = ds.build(ctx, "train")
    defense = df.build(ctx)
    defense.workdir = folder
    aug_objs = [a.build(ctx) for a in augs]
    console.print(f"training defense [bold]{df.name}[/] (cached as {folder.name})")
    model = defense.fit(model, train_ds, aug_objs)
    if not isinstance(model, Backbone):
        raise VladvError(f"defense '{df.name}' did not return a backbone")
    model.save(final, metadata={"defense": df.name, "key": key})
    return model, time.perf_counter() - start

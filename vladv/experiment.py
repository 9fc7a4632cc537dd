"""The runner: backbone × defense × augmenters × attacks × dataset × seed → result records.

Everything is resolved (plugin names, options) before any heavy work starts, so a typo fails in
milliseconds. Cells whose record already exists in the output directory are skipped (resume).
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from rich.console import Console
from rich.markup import escape

from vladv import distributed
from vladv.backbone import Backbone
from vladv.cache import build_once, config_hash, parameters_sha256
from vladv.console import dim_notice, get_console
from vladv.errors import CheckpointError, OptionError, PluginError, VladvError
from vladv.evaluation import encode_clean, evaluate_attack
from vladv.grid import (
    GridSpec,
    ModelKey,
    Resolver,
    check_runtime,
    expand,
    load_experiment_file,
    merge,
)
from vladv.options import check_seed, options_to_dict
from vladv.plugins import get_registry
from vladv.render import save_example_images
from vladv.results import (
    build_record,
    check_manifest,
    load_record,
    record_path,
    run_id,
    runtime_facts,
    write_record,
)
from vladv.seeds import seed_everything
from vladv.transfer import (
    Crafted,
    check_fits,
    craft,
    craft_folder,
    craft_key,
    load_crafted,
    save_crafted,
    source_keys,
)
from vladv.types import (
    Attack,
    Augmenter,
    Context,
    Defense,
    ImageTextDataset,
    PluginSpec,
    ThreatModel,
)

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
        """Call the plugin's factory; a factory that returns the wrong type is a PluginError."""
        assert self.spec is not None
        obj = self.spec.factory(self.options, ctx, *args)
        expected = _BUILT_TYPES[self.kind]
        if not isinstance(obj, expected):
            plugin = get_registry().plugin_of(self.kind, self.name).name
            raise PluginError(
                f"{self.kind} '{self.name}' (plugin {plugin}): its factory returned "
                f"{type(obj).__name__}, not {expected.__name__}"
            )
        if isinstance(obj, Attack) and not isinstance(obj.threat_model, ThreatModel):
            raise PluginError(
                f"attack '{self.name}': threat_model is "
                f"{type(obj.threat_model).__name__}, not ThreatModel"
            )
        return obj


_BUILT_TYPES: dict[str, type] = {
    "backbone": Backbone,
    "dataset": ImageTextDataset,
    "attack": Attack,
    "defense": Defense,
    "augmenter": Augmenter,
}


def resolve(
    kind: str, name: str, given: Mapping[str, Any] | None = None, res: Resolver | None = None
) -> Choice:
    """Look up a plugin and resolve its options; ``none`` is the empty choice."""
    if name == NONE and kind in ("attack", "defense"):
        if given:
            raise OptionError(f"{kind} 'none' takes no options; got {', '.join(given)}")
        return Choice(kind, NONE, None, None)
    res = res or Resolver()
    return Choice(kind, name, res.spec(kind, name), res.options(kind, name, given or {}))


def make_context(
    device: str | None = None,
    precision: str = "fp32",
    seed: int = 0,
    num_workers: int = 0,
    progress: bool = True,
    console: Any = None,
) -> Context:
    if precision not in ("fp32", "bf16", "fp16"):
        raise OptionError(f"precision must be fp32, bf16 or fp16; got {precision!r}")
    check_seed(seed)
    if device is not None and not isinstance(device, str):
        raise OptionError(f"device must be a string (cpu, cuda or cuda:N); got {device!r:.60}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise OptionError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(
            "device 'cuda' requested but CUDA is not available here; use --device cpu"
        )
    dev = distributed.init_from_env(dev)
    if not distributed.is_main():  # rank 0 draws progress and prints
        progress = False
        console = Console(file=io.StringIO(), stderr=False)
    return Context(
        device=dev,
        precision=precision,
        seed=seed,  # type: ignore[arg-type]
        num_workers=num_workers,
        progress=progress,
        console=console,
    )


@dataclass
class Cell:
    """One record to produce: a model group's attack variant, with its identity and run id."""

    attack: Choice
    identity: dict[str, Any]
    run_id: str
    attack_obj: Any = None
    source: ModelKey | None = None  # the model the attack is crafted on; None: white-box
    craft_key: str | None = None  # the crafted examples' cache key (transfer cells)


def _listify(value: Any) -> tuple:
    """An axis value as a tuple: ``None`` → (), one value → (value,), a list → its items."""
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def build_grid(
    *,
    backbone: Any = None,
    dataset: Any = None,
    defense: Any = None,
    attack: Any = None,
    augment: Any = None,
    seed: Any = None,
    model: Any = None,
    source: Any = None,
    part: Any = None,
    precision: str | None = None,
    batch_size: int | None = None,
    config: str | Path | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    name: str | None = None,
) -> tuple[GridSpec, dict[str, Any]]:
    """A grid from an optional TOML file overridden by explicit arguments."""
    base, runtime = load_experiment_file(config) if config is not None else (GridSpec(), {})
    grid = merge(
        base,
        backbones=_listify(backbone),
        datasets=_listify(dataset),
        defenses=_listify(defense),
        attacks=_listify(attack),
        augment=_listify(augment),
        seeds=_listify(seed),
        models=_listify(model),
        sources=_listify(source),
        parts=_listify(part),
        precision=precision,
        batch_size=batch_size,
        options=options or {},
        name=name,
    )
    if len(set(grid.attacks)) != len(grid.attacks):
        raise OptionError(f"attack listed twice: {', '.join(grid.attacks)}")
    return grid, runtime


RUNS = Path("runs")
"""Where a run writes its records when neither ``output`` nor the experiment file says."""


def default_output(grid: GridSpec) -> Path:
    """``runs/<grid id>``: the experiment's name, else a hash of the grid."""
    return RUNS / (grid.name or config_hash(grid.to_dict(), 8))


class Records(list):
    """What :func:`run` returns: a list of records (or, for a dry run, of planned cells) that also
    says where they are, ``output`` (None with ``output=False``), and the ``plan`` they came
    from."""

    def __init__(self, items: list[dict[str, Any]], plan: Plan):
        super().__init__(items)
        self.plan = plan
        self.output = plan.output


@dataclass
class Group:
    """The cells that share one model: its key, its resolved plugins and its attack cells."""

    key: ModelKey
    backbone: Choice
    dataset: Choice
    defense: Choice
    augmenters: list[Choice]
    cells: list[Cell]


@dataclass
class Plan:
    """A grid resolved down to its cells (every plugin looked up, every option checked), with
    where its records go; :meth:`execute` runs it, :meth:`planned` lists it (``--dry-run``)."""

    grid: GridSpec
    groups: list[Group]
    output: Path | None
    ctx: Context
    res: Resolver
    force: bool = False
    recompute: bool = False
    save_examples: int = 0

    def _done(self, cell: Cell) -> bool:
        return (
            self.output is not None
            and not self.recompute
            and record_path(self.output, cell.run_id).exists()
        )

    def planned(self) -> Records:
        """Each cell's config and run id, with ``done``: whether ``output`` holds its record."""
        return Records(
            [
                cell.identity | {"run_id": cell.run_id, "done": self._done(cell)}
                for group in self.groups
                for cell in group.cells
            ],
            self,
        )

    def execute(self) -> Records:
        """Run every cell whose record is missing (or all with ``recompute``); return the records
        in grid order, the finished ones read back from ``output``."""
        out, ctx = self.output, self.ctx
        console = get_console(ctx)
        if out is not None:
            if distributed.is_main():
                check_manifest(out, self.grid, self.force)
            distributed.barrier()
        records: dict[str, dict[str, Any]] = {}
        order = [cell.run_id for group in self.groups for cell in group.cells]
        todo: list[tuple[Group, list[Cell]]] = []
        for group in self.groups:
            pending = []
            for cell in group.cells:
                if self._done(cell):
                    records[cell.run_id] = load_record(record_path(out, cell.run_id))  # type: ignore[arg-type]
                    console.print(f"[dim]skipping finished run {cell.run_id} (record exists)[/]")
                else:
                    pending.append(cell)
            todo.append((group, pending))
        _craft_sources([c for _, cells in todo for c in cells], self.grid, ctx, self.res)
        for group, pending in todo:
            if pending:
                ctx.seed = group.key.seed
                for cell, record in zip(
                    pending,
                    _run_group(group, pending, self.grid, ctx, out, self.save_examples, self.res),
                    strict=True,
                ):
                    records[cell.run_id] = record
        return Records([records[rid] for rid in order], self)


def run(
    *,
    backbone: str | Sequence[str] | None = None,
    dataset: str | Sequence[str] | None = None,
    defense: str | Sequence[str] | None = None,
    attack: str | Sequence[str] | None = None,
    augment: str | Sequence[str] | None = None,
    seed: int | Sequence[int] | None = None,
    model: str | Sequence[str] | None = None,
    source: str | Sequence[str] | None = None,
    part: str | Sequence[str] | None = None,
    config: str | Path | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
    output: str | Path | Literal[False] | None = None,
    backbone_options: Mapping[str, Any] | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    attack_options: Mapping[str, Any] | None = None,
    defense_options: Mapping[str, Any] | None = None,
    augment_options: Mapping[str, Any] | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    force: bool = False,
    recompute: bool = False,
    save_examples: int | None = None,
    dry_run: bool = False,
    console: Any = None,
) -> Records:
    """Run the grid backbone × dataset × defense × attack × seed; return one record per cell.

    The one runner behind ``vladv run`` and :func:`vladv.run`, with the same defaults: clip,
    synthetic-aerial, no defense, no attack, seed 0, fp32, batch size 32, progress bars on
    (``--quiet`` is ``progress=False``), records written to ``runs/<grid id>``.

    Every axis takes a name or a list of names (a defense may carry augmenters: ``mat+eda``);
    ``model`` lists model specs (``clip(model=vladv-tiny-align)/mat``) evaluated instead of
    backbone × defense; ``source`` lists the model specs attacks are crafted on (transfer
    attacks; ``self``, the default, is white-box); ``part`` says which half of each adversarial
    pair is evaluated — ``both`` (default), ``image`` (the captions kept clean) or ``text`` (the
    images kept clean), to ablate a multimodal attack;
    ``config`` is a TOML experiment file whose values these arguments override. Options are dicts
    of ``key: value`` (strings like ``"2/255"`` or typed values); ``"sga.eps"`` targets one plugin
    and ``"eps"`` every plugin of that kind that has it. Records are written to ``output``
    (default: the experiment file's ``output``, else ``runs/<experiment name or grid hash>``;
    ``False``: nowhere, the records are only returned); finished cells are skipped
    (``recompute`` redoes them), and a directory holding a different grid is refused unless
    ``force``. ``dry_run`` returns the planned cells' configs, each with ``done``: whether
    ``output`` already holds its record. The list returned also has ``.output``, the folder.

    The grid is built once and every plugin looked up once (a :class:`~vladv.grid.Resolver`);
    names, options and files are all checked before any model is built.
    """
    options = {
        "backbone": backbone_options or {},
        "dataset": dataset_options or {},
        "attack": attack_options or {},
        "defense": defense_options or {},
        "augmenter": augment_options or {},
    }
    if config is not None and not isinstance(config, str | Path):
        raise OptionError(f"config must be a path to a TOML file; got {config!r:.60}")
    grid, runtime = build_grid(
        backbone=backbone,
        dataset=dataset,
        defense=defense,
        attack=attack,
        augment=augment,
        seed=seed,
        model=model,
        source=source,
        part=part,
        precision=precision,
        batch_size=batch_size,
        config=config,
        options=options,
    )
    check_runtime(
        {
            "output": output if output is not False else None,
            "device": device,
            "num_workers": num_workers,
            "save_examples": save_examples,
        }
    )
    device = device if device is not None else runtime.get("device")
    num_workers = num_workers if num_workers is not None else int(runtime.get("num_workers", 0))
    save_examples = (
        save_examples if save_examples is not None else int(runtime.get("save_examples", 0))
    )
    if output is None:
        output = runtime.get("output") or default_output(grid)
    ctx = make_context(device, grid.precision, 0, num_workers, progress, console)
    res = Resolver()
    groups = [_plan_group(key, attacks, grid, ctx, res) for key, attacks in expand(grid, res)]
    plan = Plan(
        grid,
        groups,
        Path(output) if output is not False else None,
        ctx,
        res,
        force,
        recompute,
        save_examples,
    )
    return plan.planned() if dry_run else plan.execute()


def _plan_group(
    key: ModelKey,
    attacks: list[tuple[str, dict[str, Any]]],
    grid: GridSpec,
    ctx: Context,
    res: Resolver,
) -> Group:
    bb, ds, df, augs = _choices(key, res)
    if augs and df.spec is None:
        raise OptionError("augmenters only apply to a training defense; add --defense")
    base = {
        "backbone": bb.to_dict(),
        "dataset": ds.to_dict(),
        "defense": df.to_dict(),
        "augmenters": [a.to_dict() for a in augs],
        "seed": key.seed,
        "precision": grid.precision,
        "batch_size": grid.batch_size,
    }
    sources = source_keys(grid, key, res)
    cells: dict[str, Cell] = {}
    for name, given in attacks:
        choice = resolve("attack", name, given, res)
        attack_obj = choice.build(ctx) if choice.spec is not None else None  # factories are cheap
        threat = attack_obj.threat_model.to_dict() if attack_obj is not None else None
        attack = {**choice.to_dict(), "threat_model": threat}
        for src in sources if attack_obj is not None else [None]:
            source = source_identity(src, res) if src is not None else None
            if source is not None and source == {k: base[k] for k in source}:
                src = source = None  # the target itself, spelled differently: white-box
            ck = (
                None
                if src is None
                else craft_key(
                    source, attack, base["dataset"], key.seed, grid.precision, grid.batch_size
                )
            )  # one crafting serves every part
            for part in (grid.parts or ("both",)) if attack_obj is not None else ("both",):
                # "both" stays unsaid, so whole-pair records keep the run ids they always had
                part_of = attack if part == "both" else {**attack, "part": part}
                identity = {**base, "source": source, "attack": part_of}
                cell = Cell(choice, identity, run_id(identity), attack_obj, src, ck)
                cells.setdefault(cell.run_id, cell)
    return Group(key, bb, ds, df, augs, list(cells.values()))


def _choices(key: ModelKey, res: Resolver) -> tuple[Choice, Choice, Choice, list[Choice]]:
    """The backbone, dataset, defense and augmenters of a model key, resolved."""
    return (
        resolve("backbone", key.backbone, dict(key.backbone_options), res),
        resolve("dataset", key.dataset, dict(key.dataset_options), res),
        resolve("defense", key.defense, dict(key.defense_options), res),
        [resolve("augmenter", a, dict(o), res) for a, o in key.augmenters],
    )


def source_identity(key: ModelKey, res: Resolver | None = None) -> dict[str, Any]:
    """A source model in records: its backbone, defense and augmenters with resolved options."""
    bb, _, df, augs = _choices(key, res or Resolver())
    return {
        "backbone": bb.to_dict(),
        "defense": df.to_dict(),
        "augmenters": [a.to_dict() for a in augs],
    }


def _build(group: Group, ctx: Context) -> tuple[Backbone, ImageTextDataset, dict[str, float]]:
    """The model of ``group`` (trained or loaded when defended), in eval mode, and its test
    split."""
    seed_everything(group.key.seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    test_ds: ImageTextDataset = group.dataset.build(ctx, "test")
    timings["data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model: Backbone = group.backbone.build(ctx).to(ctx.device).eval()
    timings["backbone"] = time.perf_counter() - t0
    model, timings["defense"] = _apply_defense(
        model, group.defense, group.augmenters, group.dataset, group.backbone, ctx, group.key.seed
    )
    return model.eval(), test_ds, timings


def _craft_sources(cells: list[Cell], grid: GridSpec, ctx: Context, res: Resolver) -> None:
    """Craft (or find cached) the examples of every transfer cell: each source model is built
    once, its clean gallery encoded once, and each (attack, seed) crafted once for all targets."""
    todo: dict[ModelKey, dict[str, Cell]] = {}
    for cell in cells:
        if cell.source is not None and cell.craft_key is not None:
            todo.setdefault(cell.source, {}).setdefault(cell.craft_key, cell)
    for src, by_key in todo.items():
        ctx.seed = src.seed
        source = Group(src, *_choices(src, res), cells=[])
        test_ds = source.dataset.build(ctx, "test")
        missing = {}
        for ck, cell in by_key.items():
            cached = load_crafted(craft_folder(ctx, cell.attack.name, ck))
            if cached is None or not check_fits(cached, test_ds):
                missing[ck] = cell
        if not missing:
            continue
        console = get_console(ctx)
        console.print(
            f"crafting {', '.join(c.attack.name for c in missing.values())} on source "
            f"[bold]{escape(source_label(source_identity(src, res), res))}[/] "
            f"(seed {src.seed})"
        )
        model, test_ds, _ = _build(source, ctx)
        clean = encode_clean(model, test_ds, ctx, grid.batch_size)
        for ck, cell in missing.items():
            folder = craft_folder(ctx, cell.attack.name, ck)
            build_once(
                folder,
                functools.partial(_usable_crafted, folder, test_ds),
                functools.partial(
                    _craft_and_save, folder, cell, model, test_ds, clean, src, ctx, grid, res
                ),
                dim_notice(ctx),
            )
        del model


def _usable_crafted(folder: Path, test_ds: ImageTextDataset) -> Crafted | None:
    """The examples cached in ``folder`` when they fit ``test_ds``, else None."""
    found = load_crafted(folder)
    return found if found is not None and check_fits(found, test_ds) else None


def _craft_and_save(
    folder: Path,
    cell: Cell,
    model: Backbone,
    test_ds: ImageTextDataset,
    clean: Any,
    src: ModelKey,
    ctx: Context,
    grid: GridSpec,
    res: Resolver,
) -> Crafted:
    """Craft ``cell``'s attack on the source ``model`` (seeded as a white-box run) and cache it."""
    seed_everything(src.seed)
    crafted = craft(model, test_ds, cell.attack_obj, cell.attack.name, clean, ctx, grid.batch_size)
    crafted.meta.update(
        source=source_identity(src, res),
        model=model.identity(),
        data=test_ds.describe(),
        attack=cell.identity["attack"],
        seed=src.seed,
    )
    if distributed.is_main():
        save_crafted(folder, crafted)
    distributed.barrier()
    return crafted


def source_label(source: Mapping[str, Any], res: Resolver | None = None) -> str:
    """A source identity as a short model spec: options that differ from the defaults shown."""
    res = res or Resolver()
    parts = []
    for kind in ("backbone", "defense"):
        name, opts = source[kind]["name"], source[kind].get("options") or {}
        if name == NONE:
            continue
        default = resolve(kind, name, None, res).to_dict()["options"]
        shown = ", ".join(f"{k}={v}" for k, v in opts.items() if default.get(k) != v)
        parts.append(name + (f"({shown})" if shown else ""))
    aug = "".join(f"+{a['name']}" for a in source.get("augmenters") or [])
    return "/".join(parts) + aug


def _run_group(
    group: Group,
    cells: list[Cell],
    grid: GridSpec,
    ctx: Context,
    out: Path | None,
    save_examples: int,
    res: Resolver,
) -> Iterator[dict[str, Any]]:
    """Build (or load) the model of one group once, then evaluate each pending cell."""
    key, bb, ds, df, augs = (
        group.key,
        group.backbone,
        group.dataset,
        group.defense,
        group.augmenters,
    )
    console = get_console(ctx)
    model, test_ds, timings = _build(group, ctx)
    clean = encode_clean(model, test_ds, ctx, grid.batch_size)
    timings["clean"] = clean.seconds
    runtime = runtime_facts(ctx)
    model_facts = {**model.identity(), "parameters_sha256": parameters_sha256(model)}
    versions = {
        "backbone": res.version("backbone", bb.name),
        "dataset": res.version("dataset", ds.name),
    }
    if df.spec is not None:
        versions["defense"] = res.version("defense", df.name)
    for a in augs:
        versions[f"augmenter:{a.name}"] = res.version("augmenter", a.name)
    for cell in cells:
        metrics: dict[str, Any] = {"clean": clean.metrics}
        cell_timings = dict(timings)
        cell_versions = dict(versions)
        extra: dict[str, Any] = {"warnings": []}
        if cell.attack_obj is not None:
            cell_versions["attack"] = res.version("attack", cell.attack.name)
            crafted = None
            if cell.source is not None and cell.craft_key is not None:
                crafted = load_crafted(craft_folder(ctx, cell.attack.name, cell.craft_key))
                if crafted is None or not check_fits(crafted, test_ds):
                    raise VladvError(
                        f"the examples crafted for run {cell.run_id} are missing "
                        f"or do not fit its test split; rerun to craft them"
                    )
                cell_timings["craft"] = float(crafted.meta.get("seconds") or 0.0)
                extra["source_model"] = crafted.meta.get("model")
            seed_everything(key.seed)
            result = evaluate_attack(
                model,
                test_ds,
                cell.attack_obj,
                cell.attack.name,
                clean,
                ctx,
                grid.batch_size,
                save_examples,
                crafted,
                part=cell.identity["attack"].get("part", "both"),
            )
            metrics.update(adversarial=result.gallery.metrics, asr=result.asr, budget=result.budget)
            cell_timings["attack"] = result.seconds
            extra["warnings"] = result.warnings
            if out is not None and result.examples and distributed.is_main():
                extra["examples"] = save_example_images(
                    out, cell.run_id, result.examples, cell.identity["attack"]["threat_model"]
                )
        record = build_record(
            identity=cell.identity,
            runtime=runtime,
            plugin_versions=cell_versions,
            data=test_ds.describe(),
            model=model_facts,
            metrics=metrics,
            timings=cell_timings,
            experiment=grid.name or None,
            **extra,
        )
        if record.get("warnings"):
            flags = record["warnings"]
            more = f" (+{len(flags) - 1} more in the record)" if len(flags) > 1 else ""
            console.print(
                f"[yellow]warning[/]: run {cell.run_id} flagged: {escape(flags[0])}{more}",
                highlight=False,
                soft_wrap=True,
            )
        if out is not None and distributed.is_main():
            write_record(out, record)
        yield record


def _apply_defense(
    model: Backbone, df: Choice, augs: list[Choice], ds: Choice, bb: Choice, ctx: Context, seed: int
) -> tuple[Backbone, float]:
    """Train (or load from the cache) the defended backbone; ``none`` returns it as it is."""
    if df.spec is None:
        if augs:
            raise OptionError("augmenters only apply to a training defense; add --defense")
        return model, 0.0
    start = time.perf_counter()
    key = config_hash(
        {
            "backbone": bb.to_dict(),
            "model": model.identity(),
            "dataset": ds.to_dict(),
            "defense": df.to_dict(),
            "augmenters": [a.to_dict() for a in augs],
            "seed": seed,
            "precision": ctx.precision,
        }
    )
    folder = ctx.cache_dir("defenses", f"{df.name}-{key}")
    final = folder / "model.safetensors"
    console = get_console(ctx)

    def cached() -> bool:
        if not final.exists():
            return False
        backup = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        try:
            model.load_weights(final)
        except CheckpointError as exc:  # documented recovery: train afresh, replace the file
            model.load_state_dict(backup)
            console.print(
                f"[yellow]warning[/]: unusable cached {df.name} checkpoint "
                f"({escape(str(exc))}); training afresh",
                highlight=False,
                soft_wrap=True,
            )
            return False
        console.print(f"[dim]using cached {df.name} checkpoint {escape(str(final))}[/]")
        return True

    model = build_once(  # the default MAT of the default CLIP ships with vladv (prebuilt)
        final,
        lambda: model if cached() else None,
        lambda: _train_defense(model, df, augs, ds, ctx, folder, final, key),
        dim_notice(ctx),
        prebuilt=True,
        prebuilt_name=f"{folder.name}.safetensors",
    )
    return model, time.perf_counter() - start


def _train_defense(
    model: Backbone,
    df: Choice,
    augs: list[Choice],
    ds: Choice,
    ctx: Context,
    folder: Path,
    final: Path,
    key: str,
) -> Backbone:
    console = get_console(ctx)
    train_ds = ds.build(ctx, "train")
    defense = df.build(ctx)
    defense.workdir = folder
    aug_objs = [a.build(ctx) for a in augs]
    console.print(f"training defense [bold]{df.name}[/] (cached as {folder.name})")
    model = defense.fit(model, train_ds, aug_objs)
    if not isinstance(model, Backbone):
        raise VladvError(f"defense '{df.name}' did not return a backbone")
    if distributed.is_main():
        model.save(final, metadata={"defense": df.name, "key": key})
    distributed.barrier()
    return model

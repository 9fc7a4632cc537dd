"""Experiment grids: CLI flags, TOML experiment files and Python arguments → a list of cells.

A grid is backbones × datasets × defenses × attacks × seeds. A defense entry may carry its
augmenters as ``mat+eda+caption``. Plugin options are given per kind, either for every plugin of
that kind that has the key (``eps``) or for one plugin (``sga.eps``); in a TOML file a **list**
value sweeps (one cell per value), except for tuple-typed options, where a list of lists sweeps::

    [experiment]
    backbones = ["clip"]
    defenses = ["none", "tecoa", "mat", "mat+eda"]
    attacks = ["pgd", "sga"]
    seeds = [0, 1, 2]

    [options.attack]
    "pgd.eps" = ["1/255", "2/255", "4/255"]
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vladv.errors import OptionError, VladvError, did_you_mean
from vladv.modelspec import SELF, ModelSpec, parse_model
from vladv.options import INT_MAX, check_seed, option_fields, options_to_dict, resolve_options
from vladv.plugins import PluginRegistry, get_registry
from vladv.types import KINDS, PluginSpec

NONE = "none"
# which half of each adversarial pair is evaluated: both, or one with the other kept clean
PARTS = ("both", "image", "text")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
"""An experiment name is one safe path component: it names the folder ``runs/<name>``."""
MAX_BATCH = 1_000_000
MAX_WORKERS = 256
MAX_EXAMPLES = 10_000


class Resolver:
    """The plugin look-ups and option resolutions of one run, each made once.

    A run (``vladv run`` or :func:`vladv.run`) makes one; expanding the grid, planning its cells,
    building the models and writing the records all ask it rather than the registry, so every
    plugin is looked up once and every set of options resolved once per run.
    """

    def __init__(self, registry: PluginRegistry | None = None) -> None:
        self.registry = registry if registry is not None else get_registry()
        self._specs: dict[tuple[str, str], PluginSpec] = {}
        self._options: dict[tuple[str, str, str], Any] = {}
        self._versions: dict[tuple[str, str], dict[str, str | None]] = {}

    def spec(self, kind: str, name: str) -> PluginSpec:
        """The spec of ``kind`` ``name`` (a one-line error if unknown)."""
        key = (kind, name)
        if key not in self._specs:
            self._specs[key] = self.registry.get(kind, name)
        return self._specs[key]

    def options(self, kind: str, name: str, given: Mapping[str, Any]) -> Any:
        """The options dataclass of ``kind`` ``name`` from ``given`` values (checked)."""
        spec = self.spec(kind, name)
        if not isinstance(given, Mapping):  # resolve_options says what is wrong in one line
            return resolve_options(f"{kind} '{name}'", spec.options, given)
        key = (kind, name, repr(list(given.items())))
        if key not in self._options:
            self._options[key] = resolve_options(f"{kind} '{name}'", spec.options, given)
        return self._options[key]

    def version(self, kind: str, name: str) -> dict[str, str | None]:
        """The plugin, distribution and version that provide ``kind`` ``name`` (for records)."""
        key = (kind, name)
        if key not in self._versions:
            self.spec(kind, name)
            info = self.registry.specs(kind)[name].plugin
            self._versions[key] = {
                "plugin": info.name,
                "distribution": info.distribution,
                "version": info.version,
            }
        return self._versions[key]


@dataclass(frozen=True)
class GridSpec:
    """Everything that decides which cells run (runtime settings excluded)."""

    backbones: tuple[str, ...] = ("clip",)
    datasets: tuple[str, ...] = ("synthetic-aerial",)
    defenses: tuple[str, ...] = (NONE,)
    attacks: tuple[str, ...] = (NONE,)
    augment: tuple[str, ...] = ()  # added to every training defense
    seeds: tuple[int, ...] = (0,)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # kind → key → value
    precision: str = "fp32"
    batch_size: int = 32
    name: str = ""
    zip: tuple[tuple[str, ...], ...] = ()  # linked sweeps: "kind.plugin.key" entries per group
    models: tuple[str, ...] = ()  # model specs evaluated instead of backbones × defenses
    sources: tuple[str, ...] = ()  # model specs attacks are crafted on; () or "self" = white-box
    parts: tuple[str, ...] = ()  # halves of the adversarial pairs evaluated; () = ("both",)

    def __post_init__(self) -> None:
        """Check every field's type and range, whatever built the grid (CLI, TOML, Python)."""
        for axis in (
            "backbones",
            "datasets",
            "defenses",
            "attacks",
            "augment",
            "models",
            "sources",
            "parts",
        ):
            values = getattr(self, axis)
            if not isinstance(values, tuple) or not all(
                isinstance(v, str) and v.strip() for v in values
            ):
                raise OptionError(f"{axis} must be plugin names (strings); got {values!r:.80}")
        if not isinstance(self.seeds, tuple):
            raise OptionError(f"seeds must be a list of integers; got {self.seeds!r:.60}")
        for seed in self.seeds:
            check_seed(seed)
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise OptionError(f"precision must be fp32, bf16 or fp16; got {self.precision!r:.40}")
        check_int(self.batch_size, "batch size", 1, MAX_BATCH)
        if not isinstance(self.name, str) or (
            self.name and (not NAME_RE.match(self.name) or set(self.name) == {"."})
        ):
            raise OptionError(
                f"experiment name must be one folder name (letters, digits, '.', "
                f"'_', '-'; at most 100); got {self.name!r:.60}"
            )
        if not isinstance(self.options, Mapping) or not all(
            k in KINDS and isinstance(v, Mapping) and all(isinstance(x, str) for x in v)
            for k, v in self.options.items()
        ):
            raise OptionError(
                f"options must map a kind ({', '.join(KINDS)}) to a mapping of "
                f"option names to values"
            )
        check_zip(self.zip, self.options)
        for entry in self.models:
            parse_model(entry)
        for entry in self.sources:
            if entry != SELF:
                parse_model(entry)
        for part in self.parts:
            if part not in PARTS:
                raise OptionError(
                    f"unknown attack part '{part}'{did_you_mean(part, PARTS)} "
                    f"(accepted: {', '.join(PARTS)})"
                )
        if len(set(self.parts)) != len(self.parts):
            raise OptionError(f"attack part listed twice: {', '.join(self.parts)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backbones": list(self.backbones),
            "datasets": list(self.datasets),
            "defenses": list(self.defenses),
            "attacks": list(self.attacks),
            "augment": list(self.augment),
            "seeds": list(self.seeds),
            "precision": self.precision,
            "batch_size": self.batch_size,
            "options": {k: dict(v) for k, v in self.options.items() if v},
            **({"zip": [list(g) for g in self.zip]} if self.zip else {}),
            **({"models": list(self.models)} if self.models else {}),
            **({"sources": list(self.sources)} if self.sources else {}),
            **({"parts": list(self.parts)} if self.parts else {}),
        }


def _zip_entry(entry: str) -> tuple[str, str, str]:
    kind, _, rest = entry.partition(".")
    plugin, _, key = rest.rpartition(".")
    return kind, plugin, key


def check_zip(groups: Any, options: Mapping[str, Mapping[str, Any]]) -> None:
    """Linked sweeps: each group names swept options ``kind.plugin.key`` of equal length."""
    if not isinstance(groups, tuple) or not all(
        isinstance(g, tuple) and len(g) >= 2 and all(isinstance(e, str) for e in g) for g in groups
    ):
        raise OptionError(
            "zip must be a list of groups of two or more options "
            '("kind.plugin.key" strings), e.g. [["backbone.clip.pretrain_data", '
            '"dataset.synthetic-aerial.train_domain"]]'
        )
    for group in groups:
        lengths = set()
        for entry in group:
            kind, plugin, key = _zip_entry(entry)
            values = options.get(kind, {}).get(f"{plugin}.{key}") if kind in KINDS else None
            if not plugin or not isinstance(values, list):
                raise OptionError(
                    f"zip entry {entry!r:.80} must name a swept option: a list "
                    f"under [options.{kind if kind in KINDS else '<kind>'}] as "
                    f'"{plugin or "<plugin>"}.{key or "<key>"}"'
                )
            lengths.add(len(values))
        if len(lengths) > 1:
            raise OptionError(
                f"zip group {list(group)} links sweeps of different lengths "
                f"({', '.join(map(str, sorted(lengths)))})"
            )


def zipped(grid: GridSpec, chosen: Mapping[str, Sequence[tuple[str, Mapping[str, Any]]]]) -> bool:
    """Whether a combination of plugin options keeps every linked sweep at one position."""
    for group in grid.zip:
        positions = set()
        for entry in group:
            kind, plugin, key = _zip_entry(entry)
            values = grid.options[kind][f"{plugin}.{key}"]
            for name, opts in chosen.get(kind, ()):
                if name == plugin and key in opts and opts[key] in values:
                    positions.add(values.index(opts[key]))
        if len(positions) > 1:
            return False
    return True


def check_int(value: Any, what: str, lo: int = 0, hi: int = INT_MAX) -> int:
    """``value`` if it is an integer in [lo, hi] (bools refused); an OptionError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionError(f"{what} must be an integer; got {value!r:.60}")
    if value < lo:
        raise OptionError(f"{what} must be at least {lo}; got {value}")
    if value > hi:
        raise OptionError(f"{what} must be at most {hi:,}; got {value}")
    return value


def check_runtime(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate runtime settings (output, device, num_workers, save_examples) from any source."""
    out = dict(settings)
    if out.get("output") is not None and not isinstance(out["output"], str | Path):
        raise OptionError(f"output must be a folder path; got {out['output']!r:.60}")
    if out.get("device") is not None and not isinstance(out["device"], str):
        raise OptionError(
            f"device must be a string (cpu, cuda or cuda:N); got {out['device']!r:.60}"
        )
    if out.get("num_workers") is not None:
        check_int(out["num_workers"], "num_workers", 0, MAX_WORKERS)
    if out.get("save_examples") is not None:
        check_int(out["save_examples"], "save_examples", 0, MAX_EXAMPLES)
    return out


def _tuple(value: Any, what: str, item_type: type = str) -> tuple:
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, item_type) and not isinstance(v, bool) for v in value
    ):
        raise OptionError(f"{what} must be a list of {item_type.__name__}s; got {value!r}")
    return tuple(value)


def load_experiment_file(path: str | Path) -> tuple[GridSpec, dict[str, Any]]:
    """Read a TOML experiment file → (grid, runtime settings such as output and device)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise VladvError(f"experiment file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise VladvError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise VladvError(f"cannot read experiment file {path}: {exc.strerror or exc}") from None
    exp = data.get("experiment", {})
    if not isinstance(exp, dict):
        raise VladvError(
            f"{path}: 'experiment' must be a table ([experiment]); got {type(exp).__name__}"
        )
    unknown = set(data) - {"experiment", "options"}
    if unknown:
        raise VladvError(
            f"{path}: unknown table(s) {', '.join(sorted(unknown))}; "
            f"use [experiment] and [options.<kind>]"
        )
    grid_keys = {
        "backbones": str,
        "datasets": str,
        "defenses": str,
        "attacks": str,
        "augment": str,
        "seeds": int,
        "models": str,
        "sources": str,
        "parts": str,
    }
    kwargs: dict[str, Any] = {}
    runtime: dict[str, Any] = {}
    try:
        for key, value in exp.items():
            if key in grid_keys:
                kwargs[key] = _tuple(value, f"experiment.{key}", grid_keys[key])
            elif key in ("precision", "name", "batch_size"):
                kwargs[key] = value
            elif key == "zip":
                if not isinstance(value, list) or not all(isinstance(g, list) for g in value):
                    raise OptionError("experiment.zip must be a list of lists of option names")
                kwargs[key] = tuple(tuple(g) for g in value)
            elif key in ("output", "device", "num_workers", "save_examples"):
                runtime[key] = value
            else:
                raise VladvError(f"unknown key experiment.{key}")
        options = data.get("options", {})
        if (
            not isinstance(options, dict)
            or set(options) - set(KINDS)
            or not all(isinstance(t, dict) for t in options.values())
        ):
            raise VladvError(f"[options] holds one table per kind: {', '.join(KINDS)}")
        kwargs["options"] = {kind: _flatten(options.get(kind, {})) for kind in KINDS}
        runtime = check_runtime(runtime)
        grid = GridSpec(**kwargs)
    except VladvError as exc:
        raise (OptionError if isinstance(exc, OptionError) else VladvError)(
            f"{path}: {exc}"
        ) from None
    relative = runtime.get("output")
    if relative is not None and not Path(relative).is_absolute():
        runtime["output"] = str(Path(relative))
    return grid, runtime


def _flatten(table: Mapping[str, Any]) -> dict[str, Any]:
    """``{"pgd": {"eps": x}}`` and ``{"pgd.eps": x}`` are the same option."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = v
        else:
            out[key] = value
    return out


_AXIS_KIND = {
    "backbones": "backbone",
    "datasets": "dataset",
    "defenses": "defense",
    "attacks": "attack",
}


def merge(base: GridSpec, **overrides: Any) -> GridSpec:
    """Override grid axes given on the command line (None/empty = keep the file's value).

    When an axis is overridden, the file's ``name.key`` options for plugins no longer in that
    axis are dropped (they belonged to the file's grid, not to this run).
    """
    changes: dict[str, Any] = {}
    base_options = {k: dict(v) for k, v in base.options.items()}
    for axis, kind in _AXIS_KIND.items():
        value = overrides.get(axis)
        if value in (None, (), []):
            continue
        names = {parse_defense(v)[0] for v in value} if kind == "defense" else set(value)
        if kind == "defense":
            names |= {a for v in value for a in parse_defense(v)[1]}
        base_options[kind] = {
            k: v
            for k, v in base_options.get(kind, {}).items()
            if "." not in k or k.partition(".")[0] in names
        }
        if kind == "defense":  # the augmenters ride on the defense entries
            augs = {a for v in value for a in parse_defense(v)[1]} | set(
                overrides.get("augment") or base.augment
            )
            base_options["augmenter"] = {
                k: v
                for k, v in base_options.get("augmenter", {}).items()
                if "." not in k or k.partition(".")[0] in augs
            }
    links = tuple(
        g
        for g in (
            tuple(
                e
                for e in group
                if isinstance(
                    base_options.get(_zip_entry(e)[0], {}).get(".".join(_zip_entry(e)[1:])), list
                )
            )
            for group in base.zip
        )
        if len(g) >= 2
    )  # linked sweeps whose plugins left the run are unlinked
    base = replace(base, options=base_options, zip=links)
    if (
        base.models
        and not overrides.get("models")
        and any(overrides.get(axis) for axis in ("backbones", "defenses"))
    ):
        base = replace(base, models=())  # a backbone or defense axis given replaces the models
    for key, value in overrides.items():
        if key == "options":
            merged = {k: dict(v) for k, v in base.options.items()}
            for kind, opts in (value or {}).items():
                if kind not in KINDS or not isinstance(opts, Mapping):
                    raise OptionError(
                        f"{kind} options must be a mapping of option names to "
                        f"values; got {type(opts).__name__}"
                    )
                merged.setdefault(kind, {}).update(opts)
            changes["options"] = merged
        elif value not in (None, (), []):
            changes[key] = tuple(value) if isinstance(value, list) else value
    return replace(base, **changes)


def parse_defense(entry: str) -> tuple[str, tuple[str, ...]]:
    """``"mat+eda+caption"`` → ``("mat", ("eda", "caption"))``."""
    name, *augs = [p.strip() for p in entry.split("+")]
    if not name or any(not a for a in augs):
        raise OptionError(f"bad defense entry {entry!r}; write DEFENSE or DEFENSE+AUGMENTER[+...]")
    return name, tuple(augs)


def _is_sweep(kind: str, name: str, key: str, value: Any, res: Resolver | None = None) -> bool:
    if not isinstance(value, list):
        return False
    spec = (res or Resolver()).spec(kind, name)
    for f, tp in option_fields(spec.options):
        if f.name == key.replace("-", "_"):
            is_tuple = getattr(tp, "__origin__", None) in (tuple, list)
            return not is_tuple or (bool(value) and isinstance(value[0], list))
    return True  # unknown key: resolve_options reports it


def _accepts(kind: str, name: str, key: str, res: Resolver | None = None) -> bool:
    fields = option_fields((res or Resolver()).spec(kind, name).options)
    return key.replace("-", "_") in {f.name for f, _ in fields}


def check_routing(
    kind: str, given: Mapping[str, Any], names_in_run: Sequence[str], res: Resolver | None = None
) -> None:
    """Every option must reach a plugin: ``name.key`` a plugin in the run, ``key`` one that has
    it."""
    real = [n for n in dict.fromkeys(names_in_run) if n != NONE]
    for key in given:
        target, dot, _ = key.partition(".")
        if dot and target not in real:
            raise OptionError(
                f"option '{key}' names {kind} '{target}', which is not part of "
                f"this run ({', '.join(names_in_run) or 'none'})"
            )
        if not dot and len(real) != 1 and not any(_accepts(kind, n, key, res) for n in real):
            raise OptionError(
                f"no {kind} in this run ({', '.join(names_in_run) or 'none'}) has an option '{key}'"
            )


def options_for(
    kind: str,
    name: str,
    given: Mapping[str, Any],
    names_in_run: Sequence[str],
    res: Resolver | None = None,
) -> list[dict[str, Any]]:
    """The option dicts (one per sweep point) for plugin ``name`` of ``kind``.

    ``name.key`` goes to that plugin; a plain ``key`` goes to every plugin that has it (to the
    only plugin of the run, if there is one, so that it reports an unknown key itself).
    """
    if name == NONE:
        return [{}]
    res = res or Resolver()
    alone = len([n for n in dict.fromkeys(names_in_run) if n != NONE]) == 1
    mine: dict[str, Any] = {}
    for key, value in given.items():
        target, dot, sub = key.partition(".")
        if dot:
            if target == name:
                mine[sub] = value
        elif alone or _accepts(kind, name, key, res):
            mine[key] = value
    sweeps = {k: v for k, v in mine.items() if _is_sweep(kind, name, k, v, res)}
    fixed = {k: v for k, v in mine.items() if k not in sweeps}
    if not sweeps:
        return [fixed]
    keys = list(sweeps)
    return [
        {**fixed, **dict(zip(keys, combo, strict=True))}
        for combo in itertools.product(*(sweeps[k] for k in keys))
    ]


@dataclass(frozen=True)
class ModelKey:
    """What a trained (or plain) model depends on: one per group of cells."""

    backbone: str
    backbone_options: tuple[tuple[str, Any], ...]
    dataset: str
    dataset_options: tuple[tuple[str, Any], ...]
    defense: str
    defense_options: tuple[tuple[str, Any], ...]
    augmenters: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
    seed: int


def _freeze(d: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))


def targets(grid: GridSpec) -> list[ModelSpec]:
    """The evaluated models: the ``models`` specs, else backbones × defenses (in that order)."""
    if grid.models:
        return [parse_model(m) for m in grid.models]
    return [
        ModelSpec(b, (), d, (), tuple((a, ()) for a in augs))
        for b in grid.backbones
        for d, augs in map(parse_defense, grid.defenses)
    ]


def model_names(grid: GridSpec) -> dict[str, list[str]]:
    """Plugin names per kind of every evaluated and source model (for routing checks)."""
    specs = targets(grid) + [parse_model(s) for s in grid.sources if s != SELF]
    return {
        "backbone": [m.backbone for m in specs],
        "defense": [m.defense for m in specs],
        "augmenter": sorted({a for m in specs for a, _ in m.augmenters} | set(grid.augment)),
    }


def typed(
    kind: str, name: str, inline: Sequence[tuple[str, Any]], res: Resolver | None = None
) -> dict[str, Any]:
    """A model spec's inline options (strings) as the plugin's typed values."""
    if not inline or name == NONE:
        return dict(inline)
    resolved = options_to_dict((res or Resolver()).options(kind, name, dict(inline)))
    return {k: resolved[k.replace("-", "_")] for k, _ in inline}


def variants(
    kind: str,
    name: str,
    given: Mapping[str, Any],
    names: Sequence[str],
    inline: Sequence[tuple[str, Any]],
    res: Resolver | None = None,
) -> list[dict[str, Any]]:
    """:func:`options_for` with a model spec's inline options on top (duplicates merged)."""
    out = [
        {**o, **typed(kind, name, inline, res)} for o in options_for(kind, name, given, names, res)
    ]
    return list({_freeze(o): o for o in out}.values())


def expand(
    grid: GridSpec, res: Resolver | None = None
) -> list[tuple[ModelKey, list[tuple[str, dict[str, Any]]]]]:
    """The grid as model groups, each with its attack variants ``(name, options)``."""
    res = res or Resolver()
    opts = {kind: dict(grid.options.get(kind, {})) for kind in KINDS}
    models = targets(grid)
    names = model_names(grid)
    own = {
        "backbone": [m.backbone for m in models],
        "defense": [m.defense for m in models],
        "augmenter": sorted({a for m in models for a, _ in m.augmenters} | set(grid.augment)),
    }
    for kind, listed in (
        ("backbone", names["backbone"]),
        ("dataset", grid.datasets),
        ("defense", names["defense"]),
        ("attack", grid.attacks),
        ("augmenter", names["augmenter"]),
    ):
        for n in listed:
            if n != NONE or kind not in ("attack", "defense"):
                res.spec(kind, n)  # unknown names fail before anything else
        check_routing(kind, opts[kind], list(listed), res)
    groups = []
    attacks = [
        (a, o)
        for a in grid.attacks
        for o in options_for("attack", a, opts["attack"], grid.attacks, res)
    ]
    for model, dataset, seed in (
        itertools.product(models, grid.datasets, grid.seeds)
        if grid.models
        else _product_order(grid, models)
    ):
        chosen: dict[str, tuple] = {}
        for a, o in model.augmenters + (
            tuple((a, ()) for a in grid.augment) if model.defense != NONE else ()
        ):
            chosen.setdefault(a, o)  # first mention wins
        augs = tuple(chosen.items())
        aug_variants = [
            [(a, v) for v in variants("augmenter", a, opts["augmenter"], own["augmenter"], o, res)]
            for a, o in augs
        ]
        for bo, do, fo in itertools.product(
            variants(
                "backbone",
                model.backbone,
                opts["backbone"],
                own["backbone"],
                model.backbone_options,
                res,
            ),
            options_for("dataset", dataset, opts["dataset"], grid.datasets, res),
            variants(
                "defense",
                model.defense,
                opts["defense"],
                own["defense"],
                model.defense_options,
                res,
            ),
        ):
            for aug_combo in itertools.product(*aug_variants) if aug_variants else [()]:
                if not zipped(
                    grid,
                    {
                        "backbone": [(model.backbone, bo)],
                        "dataset": [(dataset, do)],
                        "defense": [(model.defense, fo)],
                        "augmenter": list(aug_combo),
                    },
                ):
                    continue
                key = ModelKey(
                    model.backbone,
                    _freeze(bo),
                    dataset,
                    _freeze(do),
                    model.defense,
                    _freeze(fo),
                    tuple((a, _freeze(o)) for a, o in aug_combo),
                    seed,
                )
                groups.append((key, attacks))
    return groups


def _product_order(grid: GridSpec, models: list[ModelSpec]) -> list[tuple[ModelSpec, str, int]]:
    """backbones × datasets × defenses × seeds, the grid's historical order of model groups."""
    n = len(grid.defenses)
    return [
        (models[b * n + d], ds, seed)
        for b, ds, d, seed in itertools.product(
            range(len(grid.backbones)), grid.datasets, range(n), grid.seeds
        )
    ]


def describe(groups: Iterable[tuple[ModelKey, list[tuple[str, dict[str, Any]]]]]) -> list[str]:
    """Human-readable lines of a grid, for ``--dry-run``."""
    lines = []
    for key, attacks in groups:
        label = key.defense + "".join(f"+{a}" for a, _ in key.augmenters)
        opts = ", ".join(f"{k}={v}" for k, v in key.defense_options)
        for name, o in attacks:
            aopts = ", ".join(f"{k}={v}" for k, v in o.items())
            lines.append(
                f"{key.backbone} | {key.dataset} | {label}{f' ({opts})' if opts else ''}"
                f" | {name}{f' ({aopts})' if aopts else ''} | seed {key.seed}"
            )
    return lines

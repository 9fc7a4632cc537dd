"""Result records: schema, atomic writing and loading (tables and images: :mod:`vladv.render`).

One JSON record per (backbone, defense, augmenters, attack, dataset, seed). Reports are pure
functions of records. Schema changes are listed in ``SCHEMA_CHANGES`` and
``docs/results-schema.md``.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from vladv.cache import atomic_write_json, config_hash, finite_json
from vladv.errors import VladvError

SCHEMA_VERSION = 6
SCHEMA_CHANGES = {
    1: "first version: config, versions, data, model, metrics (clean, adversarial, asr, budget), "
    "timings",
    2: "adds `experiment` (the grid's name or null) and `examples` (path of the saved "
    "adversarial examples' index, relative to the output directory, when saved)",
    3: "records are strict JSON: a number that is not finite (NaN, infinity) is stored as null "
    "and named in `warnings`, a list of one-line strings present only when the run was "
    "flagged (e.g. an attack returned non-finite pixels)",
    4: "adds `config.source` (the model a transfer attack was crafted on: backbone, defense, "
    "augmenters; null for white-box, where it is left out of the run id), `source_model` and "
    "`timings.craft` on transfer records",
    5: "adds `config.runtime.threads` and `config.runtime.cpu` (float results depend on the CPU "
    "and the intra-op thread count) and `model.parameters_sha256` (a hash of the evaluated "
    "weights: equal hashes, bit-identical models)",
    6: "adds `config.attack.part` (`image` or `text`: only that half of each adversarial pair "
    "was evaluated, the other kept clean; absent for the whole pair, whose run ids are "
    "unchanged)",
}
MANIFEST = "experiment.json"


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the packages that change numbers."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("vladv", "torch", "open_clip_torch", "transformers", "kornia", "tokenizers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    out["vladv_commit"] = _git_commit()
    return out


def runtime_facts(ctx: Any) -> dict[str, Any]:
    """Where a run ran: device, data-loader workers, intra-op threads and the CPU's model name.

    Not part of the run id, but float results depend on them: the same cell computed with another
    thread count or on another CPU can differ in the last bits (docs/results.md#reproducibility).
    """
    import torch

    return {
        "device": str(ctx.device),
        "num_workers": ctx.num_workers,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
    }


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else ``platform.processor()`` or the machine."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """The checkout's commit, read once per process (at import, below): a run that lasts while
    the checkout moves on records the commit of the code it loaded, not the one at its end."""
    here = Path(__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        res = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


_git_commit()


def run_id(identity: dict[str, Any]) -> str:
    """The id of a cell: a hash of its resolved configuration (runtime settings excluded).

    A null ``source`` (white-box) is left out, so white-box ids are those of schema 3.
    """
    if "source" in identity and identity["source"] is None:
        identity = {k: v for k, v in identity.items() if k != "source"}
    return config_hash(identity, length=16)


def build_record(
    *,
    identity: dict[str, Any],
    runtime: dict[str, Any],
    plugin_versions: dict[str, Any],
    data: dict[str, Any],
    model: dict[str, Any],
    metrics: dict[str, Any],
    timings: dict[str, float],
    experiment: str | None = None,
    examples: str | None = None,
    warnings: list[str] | None = None,
    source_model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A strict-JSON record: non-finite numbers become null and are listed in ``warnings``."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id(identity),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "experiment": experiment,
        "config": {"source": None, **identity, "runtime": runtime},
        "versions": {**package_versions(), "plugins": plugin_versions},
        "data": data,
        "model": model,
        **({"source_model": source_model} if source_model is not None else {}),
        "metrics": metrics,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    if examples is not None:
        record["examples"] = examples
    record, nonfinite = finite_json(record)
    flagged = list(warnings or [])
    if nonfinite:
        flagged.append(f"not finite, stored as null: {', '.join(nonfinite)}")
    if flagged:
        record["warnings"] = flagged
    return record


def read_manifest(output: Path) -> dict[str, Any] | None:
    """The grid recorded in ``output``'s manifest, or None (absent or unreadable)."""
    try:
        grid = json.loads((Path(output) / MANIFEST).read_text()).get("grid")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return grid if isinstance(grid, dict) else None


def check_manifest(output: Path, grid: Any, force: bool) -> None:
    """Refuse to mix grids in one directory (unless ``force``); record the grid otherwise."""
    path = Path(output) / MANIFEST
    current = {"schema_version": SCHEMA_VERSION, "grid": grid.to_dict()}
    if path.exists() and not force:
        previous = read_manifest(output)
        if previous is not None and previous != current["grid"]:
            raise VladvError(
                f"{output} holds results of a different experiment grid; use another "
                f"--output, or --force to add this grid's runs to it"
            )
    atomic_write_json(path, current)


def record_path(output: Path, rid: str) -> Path:
    return Path(output) / f"{rid}.json"


def write_record(output: Path, record: dict[str, Any]) -> Path:
    """Write a record atomically as ``<output>/<run_id>.json``."""
    return atomic_write_json(record_path(output, record["run_id"]), record)


def load_record(path: Path) -> dict[str, Any]:
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VladvError(f"cannot read result record {path}: {exc}") from None
    if not isinstance(rec, dict) or "run_id" not in rec or "metrics" not in rec:
        raise VladvError(f"{path} is not a vladv result record")
    return rec


def load_records(output: Path) -> list[dict[str, Any]]:
    """Every record in a directory, sorted by creation time."""
    output = Path(output)
    if not output.is_dir():
        raise VladvError(f"no result directory at {output}")
    recs = [load_record(p) for p in sorted(output.glob("*.json")) if p.name != MANIFEST]
    return sorted(recs, key=lambda r: (r.get("created", ""), r["run_id"]))


def part_suffix(attack: Mapping[str, Any]) -> str:
    """``" [image part]"`` for a record's ``config.attack`` that evaluated one half of each
    adversarial pair (schema 6), ``""`` for the whole pair."""
    part = attack.get("part")
    return f" [{part} part]" if part else ""


def seeds_label(seeds: Sequence[int]) -> str:
    """``seed 0`` or ``seeds 0, 1, 2``: the seeds behind a report's table."""
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def defense_label(config: dict[str, Any]) -> str:
    """``mat+eda+caption`` style label of a record's defense and augmenters."""
    label = config["defense"]["name"]
    if config.get("augmenters"):
        label += "+" + "+".join(a["name"] for a in config["augmenters"])
    return label

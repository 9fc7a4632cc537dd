"""Put the default embedded models into ``vladv/prebuilt/``: the copies that ship with vladv.

    python docs/world/ship_prebuilt.py            # from VLADV_HOME, building what is missing
    python docs/world/ship_prebuilt.py --rebuild  # build them all here first (~30 min on 2 cores)

The default tiny CLIP (``vladv-tiny-aerial``, default options), the same CLIP pretrained on the
``generated`` and ``mixed`` training sets (the research grid's), the embedded masked LM
(``vladv-tiny-mlm``) and the default MAT of the default CLIP (README command 1's defense:
default MAT options, the default synthetic-aerial world, seed 0, fp32) are copied under their
cache names — content hashes of their whole recipes, so a shipped copy is only ever used for
exactly that configuration — and ``MANIFEST.json`` lists each one's sha256, size and where and
how it was built (an artifact whose bytes did not change keeps its entry). A maintainer runs
this after a change of a recipe or of the world; ``tests/test_prebuilt.py`` fails until then
(docs/world.md#prebuilt-models).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

os.environ["VLADV_PREBUILT"] = "0"  # never take a shipped copy as the source of a new one

from safetensors import safe_open  # noqa: E402

import vladv  # noqa: E402
import vladv.experiment  # noqa: E402
from vladv.cache import (  # noqa: E402
    PREBUILT_DIR,
    PREBUILT_MAT_RUN,
    atomic_write_json,
    copy_artifact,
    prebuilt_manifest,
    tree_sha256,
)
from vladv.experiment import make_context  # noqa: E402
from vladv.kit.mlm import prepare_mlm  # noqa: E402
from vladv.options import resolve_options  # noqa: E402
from vladv.plugins import get_spec  # noqa: E402
from vladv.results import cpu_name  # noqa: E402
from vladv_plugins.clip_pretrain import pretrain_clip  # noqa: E402

GRID_TRAINING_SETS = ("generated", "mixed")
"""Other training sets whose CLIP ships too, so every session and machine runs the research grid
(experiments/research_question.toml) on the same models."""


def default_mat(rebuild: bool, clip: Path, mlm: Path) -> tuple[Path, dict]:
    """Train (or find in the cache) the default MAT of the default CLIP, README command 1's
    defense; its checkpoint and a record of it (clean test metrics) from a zero-step PGD run.
    ``rebuild`` trains it in a scratch VLADV_HOME holding only ``clip`` and ``mlm``."""
    if rebuild:
        home = Path(tempfile.mkdtemp(prefix="vladv-ship-"))
        for src in (clip, mlm):
            copy_artifact(src, home / "models" / src.name)
        os.environ["VLADV_HOME"] = str(home)
    seen: list[Path] = []
    real = vladv.experiment.build_once

    def spy(target, *args, **kwargs):  # the defense's cache path: the name of its recipe
        seen.append(Path(target))
        return real(target, *args, **kwargs)

    vladv.experiment.build_once = spy
    try:
        [record] = vladv.run(**PREBUILT_MAT_RUN)
    finally:
        vladv.experiment.build_once = real
    [final] = [t for t in seen if t.parent.name.startswith("mat-")]
    return final, record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="build every model here first")
    args = parser.parse_args()
    ctx = make_context("cpu", seed=0)
    spec = get_spec("backbone", "clip").options
    clips = {  # training set (None: the default CLIP) -> its pretrained CLIP
        data: pretrain_clip(
            resolve_options("backbone 'clip'", spec, {"pretrain_data": data} if data else {}),
            ctx,
            force=args.rebuild,
        )
        for data in (None, *GRID_TRAINING_SETS)
    }
    clip = clips[None]
    mlm = prepare_mlm(ctx, force=args.rebuild)
    mat, mat_record = default_mat(args.rebuild, clip, mlm)
    mat_name = f"{mat.parent.name}.safetensors"  # the defense's cache folder, as one file
    where = f"{datetime.date.today().isoformat()}, {cpu_name()}, torch {torch.__version__}"
    threads = f"{where}, {torch.get_num_threads()} threads"
    built = {
        **{path.name: threads for path in clips.values()},
        mlm.name: f"{where}, 1 thread (the masked LM always trains single-threaded)",
        mat_name: threads,
    }
    notes = {}
    for data, path in clips.items():
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        notes[path.name] = {
            "what": "default embedded CLIP (vladv-tiny-aerial, default clip options)"
            if data is None
            else f"embedded CLIP pretrained on the {data} training set (clip option "
            f"pretrain_data={data}, otherwise defaults; the research grid's)",
            "test_metrics": json.loads(meta.get("test_metrics", "{}")),
            "seconds": json.loads(meta.get("seconds", "{}")),
        }
    training = json.loads((mlm / "training.json").read_text())
    notes[mlm.name] = {
        "what": "embedded masked LM (vladv-tiny-mlm, default recipe)",
        "heldout_accuracy": training.get("heldout_accuracy"),
        "seconds": training.get("seconds"),
    }
    notes[mat_name] = {
        "what": "default MAT of the default CLIP (README command 1's defense: default mat "
        "options, default synthetic-aerial world, seed 0, fp32)",
        "test_metrics": mat_record["metrics"]["clean"],
        "parameters_sha256": mat_record["model"].get("parameters_sha256"),
    }
    before = prebuilt_manifest()
    if PREBUILT_DIR.exists():
        shutil.rmtree(PREBUILT_DIR)
    PREBUILT_DIR.mkdir(parents=True)
    artifacts = {}
    shipped = [(clip, clip.name), (mlm, mlm.name), (mat, mat_name)]
    shipped += [(clips[data], clips[data].name) for data in GRID_TRAINING_SETS]
    for src, name in shipped:
        dst = copy_artifact(src, PREBUILT_DIR / name)
        files = [p for p in dst.rglob("*") if p.is_file()] if dst.is_dir() else [dst]
        size = sum(p.stat().st_size for p in files)
        artifacts[name] = {
            "sha256": tree_sha256(dst),
            "bytes": size,
            "built": built[name],
            **notes[name],
        }
        if before.get(name, {}).get("sha256") == artifacts[name]["sha256"]:
            artifacts[name] = before[name]  # the same bytes: where and how they were built
    atomic_write_json(
        PREBUILT_DIR / "MANIFEST.json",
        {
            "about": "the default embedded models, built by vladv's own recipes "
            "(docs/world.md#prebuilt-models); regenerate with docs/world/ship_prebuilt.py",
            "artifacts": artifacts,
        },
    )
    for name, entry in artifacts.items():
        print(f"{name}: {entry['bytes'] / 1e6:.1f} MB, sha256 {entry['sha256']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

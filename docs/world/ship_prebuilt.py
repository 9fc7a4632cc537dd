"""Put the default embedded models into ``vladv/prebuilt/``: the copies that ship with vladv.

    python docs/world/ship_prebuilt.py            # from VLADV_HOME, building what is missing
    python docs/world/ship_prebuilt.py --rebuild  # build both here first (~6 min on 2 cores)

The default tiny CLIP (``vladv-tiny-aerial``, default options) and the embedded masked LM
(``vladv-tiny-mlm``) are copied under their cache names — content hashes of their whole recipes,
so a shipped copy is only ever used for exactly that configuration — and ``MANIFEST.json`` lists
each one's sha256, size and where and how it was built. A maintainer runs this after a change of
either recipe or of the world; ``tests/test_prebuilt.py`` fails until then
(docs/world.md#prebuilt-models).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys

import torch

os.environ["VLADV_PREBUILT"] = "0"  # never take a shipped copy as the source of a new one

from safetensors import safe_open  # noqa: E402

from vladv.cache import PREBUILT_DIR, atomic_write_json, copy_artifact, tree_sha256  # noqa: E402
from vladv.experiment import make_context  # noqa: E402
from vladv.kit.mlm import prepare_mlm  # noqa: E402
from vladv.options import resolve_options  # noqa: E402
from vladv.plugins import get_spec  # noqa: E402
from vladv.results import cpu_name  # noqa: E402
from vladv_plugins.clip_pretrain import pretrain_clip  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="build both models here first")
    args = parser.parse_args()
    ctx = make_context("cpu", seed=0)
    options = resolve_options("backbone 'clip'", get_spec("backbone", "clip").options, {})
    clip = pretrain_clip(options, ctx, force=args.rebuild)
    mlm = prepare_mlm(ctx, force=args.rebuild)
    where = f"{datetime.date.today().isoformat()}, {cpu_name()}, torch {torch.__version__}"
    built = {
        clip.name: f"{where}, {torch.get_num_threads()} threads",
        mlm.name: f"{where}, 1 thread (the masked LM always trains single-threaded)",
    }
    with safe_open(str(clip), "pt") as f:
        meta = f.metadata() or {}
    training = json.loads((mlm / "training.json").read_text())
    notes = {
        clip.name: {
            "what": "default embedded CLIP (vladv-tiny-aerial, default clip options)",
            "test_metrics": json.loads(meta.get("test_metrics", "{}")),
            "seconds": json.loads(meta.get("seconds", "{}")),
        },
        mlm.name: {
            "what": "embedded masked LM (vladv-tiny-mlm, default recipe)",
            "heldout_accuracy": training.get("heldout_accuracy"),
            "seconds": training.get("seconds"),
        },
    }
    if PREBUILT_DIR.exists():
        shutil.rmtree(PREBUILT_DIR)
    PREBUILT_DIR.mkdir(parents=True)
    artifacts = {}
    for src in (clip, mlm):
        dst = copy_artifact(src, PREBUILT_DIR / src.name)
        files = [p for p in dst.rglob("*") if p.is_file()] if dst.is_dir() else [dst]
        size = sum(p.stat().st_size for p in files)
        artifacts[src.name] = {
            "sha256": tree_sha256(dst),
            "bytes": size,
            "built": built[src.name],
            **notes[src.name],
        }
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

"""How long each embedded model takes to build from nothing, against five minutes on 2 cores.

Every embedded model vladv pretrains itself — the tiny CLIP (``vladv-tiny-aerial``), the
ALIGN-style model (``vladv-tiny-align``), the masked LM (``vladv-tiny-mlm``) and the captioner
(``vladv-tiny-captioner``) — is built here with its real code path and default recipe in an
empty temporary ``VLADV_HOME``, after the one-off generation of the 20,000 training images that
they share. The masked LM and the captioner are built at their default step counts (their
whole build is timed); the two contrastive models run ``--steps`` steps, timed apart from their
data preparation (their checkpoints record both), and are projected to their default 1,350
(``--full``: run them at their defaults too). ALIGN's text tower starts from the masked LM just
built, as it does by default. Budget (docs/world.md): five minutes per model on a 2-core CPU.

    python bench/pretraining.py                   # CLIP/ALIGN: 100 timed steps
    python bench/pretraining.py --full --threads 2

Not a test: figures are printed, never asserted. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _machine import add_threads_argument, apply_threads, machine_line
from rich.console import Console
from rich.table import Table

BUDGET_S = 300.0


def _steps_seconds(path: Path) -> float:
    """Training seconds recorded in an embedded CLIP/ALIGN checkpoint's metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return float(json.loads(f.metadata()["seconds"])["train"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed CLIP / ALIGN steps")
    parser.add_argument("--full", action="store_true", help="CLIP / ALIGN at their defaults")
    add_threads_argument(parser)
    args = parser.parse_args()
    apply_threads(args)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="vladv-bench-home-") as home:
        os.environ["VLADV_HOME"] = home
        os.environ["VLADV_PREBUILT"] = "0"  # build every model, never copy a shipped one
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import dataclasses

        import vladv
        from vladv.kit.mlm import TinyMLMConfig, prepare_mlm
        from vladv_plugins.captioning import CaptionOptions, prepare_captioner
        from vladv_plugins.captioning_model import CaptionerConfig
        from vladv_plugins.clip import ClipOptions
        from vladv_plugins.clip_pretrain import (
            ALIGN_MODEL,
            DEFAULT_STEPS,
            dataset_options,
            pretrain_clip,
            world_dataset,
        )

        ctx = vladv.Context(console=None)
        console.print(machine_line(ctx, "fp32"))
        rows: list[tuple[str, int, float, float, int]] = []  # name, steps, s, once, default

        t0 = time.perf_counter()
        world_dataset().factory(dataset_options(ClipOptions()), ctx, "train")
        data_s = time.perf_counter() - t0
        console.print(f"training images (20,000, generated once, shared): {data_s:.1f} s")

        clip_defaults = ClipOptions()
        default = DEFAULT_STEPS[clip_defaults.model]
        steps = default if args.full else args.steps
        path = pretrain_clip(dataclasses.replace(clip_defaults, pretrain_steps=steps), ctx)
        rows.append(("CLIP (vladv-tiny-aerial)", steps, _steps_seconds(path), data_s, default))

        mlm_steps = TinyMLMConfig().steps
        t0 = time.perf_counter()
        prepare_mlm(ctx)
        mlm_s = time.perf_counter() - t0
        rows.append(("masked LM", mlm_steps, mlm_s, 0.0, mlm_steps))

        align_default = DEFAULT_STEPS[ALIGN_MODEL]
        align_steps = align_default if args.full else args.steps
        align = dataclasses.replace(
            clip_defaults,
            model=ALIGN_MODEL,
            pretrain_steps=align_steps,
            pretrain_text_init="",
        )
        path = pretrain_clip(align, ctx)
        rows.append(
            (
                "ALIGN (vladv-tiny-align)",
                align_steps,
                _steps_seconds(path),
                data_s + mlm_s,
                align_default,
            )
        )

        cap_steps = CaptionerConfig().steps
        t0 = time.perf_counter()
        prepare_captioner(CaptionOptions(), ctx)
        cap_s = time.perf_counter() - t0
        rows.append(("captioner", cap_steps, cap_s, data_s, cap_steps))

    table = Table(title="embedded pretraining from an empty VLADV_HOME")
    for col in (
        "model",
        "s / step",
        "default steps",
        "projected training",
        "+ once",
        "total",
        "÷ 5 min",
    ):
        table.add_column(col, justify="right" if col != "model" else "left")
    for name, steps, seconds, once, default in rows:
        per_step = seconds / steps
        train = per_step * default
        total = train + once
        table.add_row(
            name,
            f"{per_step:.3f}",
            str(default),
            f"{train:.0f} s",
            f"{once:.0f} s",
            f"{total:.0f} s",
            f"{total / BUDGET_S:.2f}",
        )
    console.print(table)
    console.print(
        "'+ once': what the model needs first on a cold machine — the shared training images "
        "(and for ALIGN the masked LM it starts from). Masked LM and captioner: whole builds "
        "at their default steps (setup included in s / step)."
    )


if __name__ == "__main__":
    main()

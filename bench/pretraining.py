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

The contrastive models' steps are also compared with their *FLOP floor* on this machine: the
FLOPs of one training step (forward and backward on a batch of the real training pairs, counted
by ``torch.utils.flop_counter``) at the fp32 matrix-product rate measured in the same run. That
ratio, unlike the seconds, holds across CPUs; the floor of the default steps says whether any
code could fit the budget on this machine with this model.

    python bench/pretraining.py                   # CLIP/ALIGN: 100 timed steps
    python bench/pretraining.py --full --threads 2
    python bench/pretraining.py --models clip --steps 30

Not a test: figures are printed, never asserted. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _machine import add_threads_argument, apply_threads, gemm_gflops, machine_line
from rich.console import Console
from rich.table import Table

BUDGET_S = 300.0


@dataclass(frozen=True)
class Row:
    name: str
    steps: int
    seconds: float  # timed training (or the whole build)
    once: float  # what the model needs first on a cold machine
    default: int  # default steps
    gflop: float = 0.0  # one training step's GFLOP (contrastive models)


def _seconds(path: Path) -> tuple[float, float]:
    """(data, training) seconds recorded in an embedded CLIP/ALIGN checkpoint's metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        seconds = json.loads(f.metadata()["seconds"])
    return float(seconds["data"]), float(seconds["train"])


def step_gflop(name: str, train, ctx) -> float:
    """GFLOP of one pretraining step of embedded model ``name``: :func:`train_clip` itself, one
    step at the default recipe, on the first batch of ``train``'s images (first captions)."""
    import open_clip
    from torch.utils.flop_counter import FlopCounterMode

    from vladv_plugins.clip import ClipOptions
    from vladv_plugins.clip_pretrain import (
        get_tokenizer,
        model_preprocess,
        quiet_open_clip,
        recipe,
        register_embedded,
        train_clip,
    )

    register_embedded(name, ctx)
    with quiet_open_clip():
        model = open_clip.create_model(name, pretrained=None)
    kwargs = recipe(ClipOptions())
    n = kwargs["batch_size"]
    tokens = get_tokenizer(name)([train.captions[ids[0]] for ids in train.img2txt[:n]])
    with FlopCounterMode(display=False) as counter:
        train_clip(
            model, model_preprocess(model), train.images[:n], tokens[:, None], steps=1, **kwargs
        )
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="timed CLIP / ALIGN steps")
    parser.add_argument("--full", action="store_true", help="CLIP / ALIGN at their defaults")
    parser.add_argument(
        "--models",
        default="clip,mlm,align,captioner",
        help="comma-separated subset of clip, mlm, align, captioner",
    )
    add_threads_argument(parser)
    args = parser.parse_args()
    models = {m.strip() for m in args.models.split(",") if m.strip()}
    unknown = models - {"clip", "mlm", "align", "captioner"}
    if unknown:
        parser.error(
            f"unknown --models {', '.join(sorted(unknown))}: "
            "choose among clip, mlm, align, captioner"
        )
    apply_threads(args)
    console = Console(width=max(Console().width, 150))
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
        rate = gemm_gflops()
        console.print(f"fp32 matrix-product rate (1024³, best of 1 s): {rate:.1f} GFLOP/s")
        rows: list[Row] = []

        t0 = time.perf_counter()
        train = world_dataset().factory(dataset_options(ClipOptions()), ctx, "train")
        data_s = time.perf_counter() - t0
        console.print(f"training images (20,000, generated once, shared): {data_s:.1f} s")

        clip_defaults = ClipOptions()
        mlm_s = 0.0
        if "clip" in models:
            default = DEFAULT_STEPS[clip_defaults.model]
            steps = default if args.full else args.steps
            path = pretrain_clip(dataclasses.replace(clip_defaults, pretrain_steps=steps), ctx)
            data, seconds = _seconds(path)
            gflop = step_gflop(clip_defaults.model, train, ctx)
            once = data_s + data
            rows.append(Row("CLIP (vladv-tiny-aerial)", steps, seconds, once, default, gflop))
        if "mlm" in models:
            mlm_steps = TinyMLMConfig().steps
            t0 = time.perf_counter()
            prepare_mlm(ctx)
            mlm_s = time.perf_counter() - t0
            rows.append(Row("masked LM", mlm_steps, mlm_s, 0.0, mlm_steps))
        if "align" in models:
            align_default = DEFAULT_STEPS[ALIGN_MODEL]
            align_steps = align_default if args.full else args.steps
            align = dataclasses.replace(
                clip_defaults, model=ALIGN_MODEL, pretrain_steps=align_steps, pretrain_text_init=""
            )
            path = pretrain_clip(align, ctx)  # builds the masked LM first if not done above
            data, seconds = _seconds(path)
            gflop = step_gflop(ALIGN_MODEL, train, ctx)
            once = data_s + mlm_s + data
            name = "ALIGN (vladv-tiny-align)"
            rows.append(Row(name, align_steps, seconds, once, align_default, gflop))
        if "captioner" in models:
            cap_steps = CaptionerConfig().steps
            t0 = time.perf_counter()
            prepare_captioner(CaptionOptions(), ctx)
            cap_s = time.perf_counter() - t0
            rows.append(Row("captioner", cap_steps, cap_s, data_s, cap_steps))

    table = Table(title="embedded pretraining from an empty VLADV_HOME")
    columns = ("model", "s / step", "default steps", "projected training", "+ once", "total")
    for col in (*columns, "÷ 5 min", "GFLOP / step", "× FLOP floor", "floor of the default steps"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for row in rows:
        per_step = row.seconds / row.steps
        training = per_step * row.default
        total = training + row.once
        flops = ("–", "–", "–")
        if row.gflop:
            floor = row.gflop / rate
            flops = (f"{row.gflop:.2f}", f"{per_step / floor:.2f}", f"{floor * row.default:.0f} s")
        table.add_row(
            row.name,
            f"{per_step:.3f}",
            str(row.default),
            f"{training:.0f} s",
            f"{row.once:.0f} s",
            f"{total:.0f} s",
            f"{total / BUDGET_S:.2f}",
            *flops,
        )
    console.print(table)
    console.print(
        "'+ once': what the model needs first on a cold machine — the shared training images "
        "(and for ALIGN the masked LM it starts from). Masked LM and captioner: whole builds "
        "at their default steps (setup included in s / step). FLOP floor: the step's FLOPs at "
        f"this run's matrix-product rate ({rate:.1f} GFLOP/s); its value for the default steps "
        "is what no code could beat on this machine with this model."
    )


if __name__ == "__main__":
    main()

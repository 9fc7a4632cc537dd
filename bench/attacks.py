"""Benchmark the attacks against the backbone's own compute, and PGD against torchattacks.

    python bench/attacks.py                       # embedded CLIP, synthetic-aerial, 2 batches of 8
    python bench/attacks.py --batches 4 --attacks pgd,sga --device cuda
    python bench/attacks.py --attacks sga --batch-size 32 [--no-text-cache]   # SGA's text cache A/B

For each attack (pgd, bert-attack, co-attack, sga) on batches of 8 images × their captions:

* seconds per batch, best of `--repeats` runs with the MLM caches cleared (an untimed warm-up
  batch first loads the MLM and warms the allocator); batches carry the clean image and caption
  embeddings, as the runner passes them from its clean gallery (``--uncached``: they do not);
* the image floor, timed directly on the same batch: ``steps`` × (image forward + backward to
  the pixels) over the rows one step evaluates (B for PGD / Co-Attack, (1 + scales)·B for SGA),
  plus the no-grad image forwards the attack still needs (SGA: the adversarial guidance, and
  without the runner's cache the clean guidance; Co-Attack: none, or the clean images);
  ratio = attack time / image floor;
* the text side as measured inside the attack: text-encoder forwards per batch (a counter on
  ``backbone.encode_text``), their seconds (tokenization included), and the masked-LM forwards
  and seconds; "compute floor" = image floor + text seconds + MLM seconds, and its ratio;
* PGD against ``torchattacks.PGD`` on identical work: the backbone as a classifier over the
  batch's class embeddings (mean caption embedding per image), logits = scale·f_I(x)·Cᵀ, label =
  image index, same ε / step / steps, no random start: max |Δ| of the outputs and both times.

Not a test: figures are printed, never asserted (targets: PGD ≤ 1.03× floor; SGA ≤ 1.3× its image
floor with ≤ 10 text-encoder forwards per batch of 8×5).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from _machine import Meter, add_threads_argument, apply_threads, machine_line
from rich.console import Console
from rich.table import Table

from vladv.data import pair_loader
from vladv.experiment import make_context, resolve
from vladv.options import parse_assignments


# ----------------------------------------------------------------------------------------------
# Counters
# ----------------------------------------------------------------------------------------------
def _sync_for(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def _mlm_meter(sync: Callable[[], None]) -> Meter:
    meter = Meter()
    from vladv.kit import mlm

    mlm.MaskedLM._forward = meter.wrap(mlm.MaskedLM._forward, sync)
    return meter


# ----------------------------------------------------------------------------------------------
# Floors
# ----------------------------------------------------------------------------------------------
def image_pass_seconds(
    backbone, images: torch.Tensor, rows: int, passes: int, ctx, sync, backward: bool = True
) -> float:
    """Seconds of ``passes`` × (forward [+ backward to the pixels]) over ``rows`` images."""
    reps = -(-rows // images.shape[0])
    x = images.repeat(reps, 1, 1, 1)[:rows].detach().clone()
    sync()
    start = time.perf_counter()
    for _ in range(passes):
        if backward:
            x.requires_grad_(True)
            with ctx.autocast():
                loss = backbone.encode_image(x).sum()
            torch.autograd.grad(loss, x)
        else:
            with torch.no_grad(), ctx.autocast():
                backbone.encode_image(x)
    sync()
    return time.perf_counter() - start


def image_floor(name: str, attack, backbone, batch, ctx, sync) -> float:
    """The image-side work an attack must do on this batch, timed directly."""
    o = attack.options
    images = batch.images
    b = images.shape[0]
    clean = 0 if batch.image_emb is not None else 1  # clean image forwards the cache saves
    if name == "pgd":
        return image_pass_seconds(backbone, images, b, o.steps, ctx, sync)
    if name == "sga":
        rows = (1 + len(o.scales)) * b
        return image_pass_seconds(backbone, images, rows, o.steps, ctx, sync) + image_pass_seconds(
            backbone, images, b, 1 + clean, ctx, sync, backward=False
        )
    if name == "co-attack":
        return image_pass_seconds(backbone, images, b, o.steps, ctx, sync) + image_pass_seconds(
            backbone, images, b, clean, ctx, sync, backward=False
        )
    return 0.0


# ----------------------------------------------------------------------------------------------
# Attacks
# ----------------------------------------------------------------------------------------------
def _clear_mlm_caches(attack: Any = None) -> None:
    """Forget cached clean MLM predictions and the search's substitutable words of each caption,
    so a repeat costs what a first run costs."""
    from vladv.kit import mlm

    memo = getattr(getattr(attack, "_search", None), "_slot_memo", None)
    if memo is not None:
        memo.clear()
    for model in mlm._LOADED.values():
        model.clear_cache()


def bench_attack(
    name: str,
    backbone,
    warmup,
    batches,
    ctx,
    sync,
    text_meter: Meter,
    mlm_meter: Meter,
    repeats: int,
) -> dict[str, Any]:
    """Best-of-``repeats`` seconds per batch of the attack and of its image floor."""
    attack = resolve("attack", name).build(ctx)
    attack.perturb(backbone, warmup, ctx.generator("bench", name))  # MLM load, allocator
    total = floor = text_s = mlm_s = 0.0
    text_calls = mlm_calls = 0
    for batch in batches:
        gen_salt = ("bench", name, int(batch.image_ids[0]))
        best = best_text = best_mlm = float("inf")
        for _ in range(repeats):
            _clear_mlm_caches(attack)
            text_meter.reset()
            mlm_meter.reset()
            sync()
            start = time.perf_counter()
            attack.perturb(backbone, batch, ctx.generator(*gen_salt))
            sync()
            seconds = time.perf_counter() - start
            if seconds < best:
                best, best_text, best_mlm = seconds, text_meter.seconds, mlm_meter.seconds
        total += best
        text_s += best_text
        mlm_s += best_mlm
        text_calls += text_meter.calls
        mlm_calls += mlm_meter.calls
        floor += min(image_floor(name, attack, backbone, batch, ctx, sync) for _ in range(repeats))
    n = len(batches)
    compute = floor + text_s + mlm_s
    return {
        "attack": name,
        "s_per_batch": total / n,
        "image_floor": floor / n,
        "ratio_image": total / floor if floor else None,
        "text_fwd": text_calls / n,
        "text_s": text_s / n,
        "mlm_fwd": mlm_calls / n,
        "mlm_s": mlm_s / n,
        "ratio_compute": total / compute if compute else None,
    }


def _with_clean_embeddings(batch, backbone, ctx):
    """The batch with its clean image and caption embeddings, as the runner's batches carry."""
    with torch.no_grad(), ctx.autocast():
        image_emb = backbone.encode_image(batch.images).float()
        text_emb = backbone.encode_text(batch.texts).float()
    return dataclasses.replace(batch, image_emb=image_emb, text_emb=text_emb)


def _clean_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}×"


# ----------------------------------------------------------------------------------------------
# PGD vs torchattacks
# ----------------------------------------------------------------------------------------------
class _Classifier(torch.nn.Module):
    def __init__(self, backbone, classes: torch.Tensor):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("classes", classes)
        self.scale = float(backbone.logit_scale.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.backbone.encode_image(x) @ self.classes.T


def bench_torchattacks(
    backbone, batches, ctx, sync, eps: float, step: float, steps: int, repeats: int
) -> dict[str, Any] | str:
    """Best-of-``repeats`` seconds of vladv's and torchattacks' PGD, and their max |Δ|."""
    try:
        import torchattacks
    except ImportError:
        return "torchattacks is not installed (pip install -c constraints.txt torchattacks)"
    from vladv.kit.gradient import projected_gradient

    diffs, t_vladv, t_ta = [], 0.0, 0.0
    for batch in batches:
        with torch.no_grad():
            text = backbone.encode_text(batch.texts).float()
        b = batch.images.shape[0]
        classes = torch.zeros(b, text.shape[1], device=text.device).index_add_(
            0, batch.txt2img.to(text.device), text
        )
        classes = F.normalize(classes, dim=-1)
        model = _Classifier(backbone, classes).eval()
        labels = torch.arange(b, device=batch.images.device)
        ta = torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=False)

        # both closures are called within this iteration only: the late binding is intended
        def objective(x: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(model(x), labels)  # noqa: B023

        def ours() -> torch.Tensor:
            return projected_gradient(
                objective,
                batch.images,  # noqa: B023
                eps=eps,
                step_size=step,
                steps=steps,
                random_start="none",
            )

        ours(), ta(batch.images, labels)  # warm-up
        best_ours = best_ta = float("inf")
        for _ in range(repeats):  # interleaved, so drift hits both alike
            sync()
            start = time.perf_counter()
            a = ours()
            sync()
            best_ours = min(best_ours, time.perf_counter() - start)
            start = time.perf_counter()
            b_ = ta(batch.images, labels)
            sync()
            best_ta = min(best_ta, time.perf_counter() - start)
        t_vladv += best_ours
        t_ta += best_ta
        diffs.append(float((a - b_).abs().max()))
    n = len(batches)
    return {
        "max_abs_diff": max(diffs),
        "vladv_s": t_vladv / n,
        "torchattacks_s": t_ta / n,
        "torchattacks_version": torchattacks.__version__,
    }


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", default="pgd,bert-attack,co-attack,sga")
    parser.add_argument("--batches", type=int, default=2, help="timed batches per attack")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--backbone", default="clip")
    parser.add_argument(
        "--backbone-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backbone option, e.g. checkpoint=weights.safetensors (repeatable)",
    )
    parser.add_argument("--dataset", default="synthetic-aerial")
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument(
        "--repeats", type=int, default=2, help="timings are the best of this many runs"
    )
    add_threads_argument(parser)
    parser.add_argument("--no-torchattacks", action="store_true")
    parser.add_argument(
        "--uncached",
        action="store_true",
        help="batches without the clean embeddings the runner passes",
    )
    parser.add_argument(
        "--no-text-cache",
        action="store_true",
        help="SGA without its text-embedding cache (an A/B of the cache; same outputs)",
    )
    args = parser.parse_args(argv)
    apply_threads(args)
    if args.no_text_cache:
        import vladv_plugins.sga

        vladv_plugins.sga.text_cache = lambda: None

    console = Console(width=max(Console().width, 120))
    if "tiny" in (args.backbone, args.dataset):  # the test fixtures of vladv.testing
        from vladv.testing import registered_plugin, tiny_plugin

        stack = contextlib.ExitStack()
        stack.enter_context(registered_plugin(tiny_plugin))
    ctx = make_context(args.device, args.precision, seed=0, progress=False)
    sync = _sync_for(ctx.device)
    console.print(machine_line(ctx, args.precision))

    backbone_opts = parse_assignments(args.backbone_opt, "--backbone-opt")
    backbone = resolve("backbone", args.backbone, backbone_opts).build(ctx).to(ctx.device).eval()
    dataset = resolve("dataset", args.dataset).build(ctx, "test")
    n_img = min(len(dataset), (args.batches + 1) * args.batch_size)
    loader = pair_loader(dataset, args.batch_size, indices=range(n_img))
    warmup, *batches = [b.to(ctx.device) for b in loader]
    batches = batches or [warmup]  # a dataset too small for a separate warm-up batch
    if not args.uncached:  # what the runner passes: rows of its clean gallery (not timed)
        warmup, *batches = [_with_clean_embeddings(b, backbone, ctx) for b in [warmup, *batches]]
    caps = len(batches[0].texts)
    console.print(
        f"backbone {args.backbone} ({backbone.identity().get('model', backbone.name)}, "
        f"{backbone.image_size}px), dataset {args.dataset}: {len(batches)} batches of "
        f"{args.batch_size} images × {caps / args.batch_size:g} captions, "
        f"{'without' if args.uncached else 'with'} the runner's clean embeddings"
    )

    text_meter = Meter()  # one encode_text call = one batched text-encoder forward
    backbone.encode_text = text_meter.wrap(backbone.encode_text, sync)  # instance patch
    mlm_meter = _mlm_meter(sync)

    rows = []
    for name in [a.strip() for a in args.attacks.split(",") if a.strip()]:
        try:
            rows.append(
                bench_attack(
                    name, backbone, warmup, batches, ctx, sync, text_meter, mlm_meter, args.repeats
                )
            )
        except Exception as exc:  # noqa: BLE001 - a missing plugin must not hide the others
            console.print(f"[yellow]{name}: skipped ({type(exc).__name__}: {exc})[/]")

    table = Table(title=f"attacks per batch of {args.batch_size} images ({ctx.device})")
    for col in (
        "attack",
        "s / batch",
        "image floor s",
        "× image floor",
        "text fwd",
        "text s",
        "MLM fwd",
        "MLM s",
        "× compute floor",
    ):
        table.add_column(col, justify="right" if col != "attack" else "left")
    for r in rows:
        table.add_row(
            r["attack"],
            f"{r['s_per_batch']:.3f}",
            f"{r['image_floor']:.3f}",
            _clean_ratio(r["ratio_image"]),
            f"{r['text_fwd']:.1f}",
            f"{r['text_s']:.3f}",
            f"{r['mlm_fwd']:.1f}",
            f"{r['mlm_s']:.3f}",
            _clean_ratio(r["ratio_compute"]),
        )
    console.print(table)

    if not args.no_torchattacks:
        with contextlib.suppress(KeyboardInterrupt):
            res = bench_torchattacks(
                backbone, batches, ctx, sync, 2 / 255, 0.5 / 255, 10, args.repeats
            )
            if isinstance(res, str):
                console.print(f"[yellow]{res}[/]")
            else:
                t = Table(
                    title="PGD (ε 2/255, step 0.5/255, 10 steps, no random start) "
                    f"vs torchattacks {res['torchattacks_version']}"
                )
                for col in ("max |Δ| outputs", "vladv s", "torchattacks s", "vladv / torchattacks"):
                    t.add_column(col, justify="right")
                t.add_row(
                    f"{res['max_abs_diff']:.2e}",
                    f"{res['vladv_s']:.3f}",
                    f"{res['torchattacks_s']:.3f}",
                    f"{res['vladv_s'] / res['torchattacks_s']:.3f}×",
                )
                console.print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())

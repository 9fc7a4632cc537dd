"""Benchmark the training defenses' steps against their own compute floor.

    python bench/defenses.py                          # tecoa, fare, mat, mat+eda; 2 + 4 steps each
    python bench/defenses.py --defenses mat --steps 6 --rounds 3 --threads 1

Each defense trains a fresh copy of the backbone (embedded CLIP on synthetic-aerial by default) for
``--warmup`` + ``--steps`` steps at its default batch size; the first ``--warmup`` steps (loading
the masked LM, warming the allocator) are not timed. Defenses run round-robin for ``--rounds``
rounds, so drift on a busy host hits all alike; each figure is the median over the timed steps of
all rounds.

* step s: wall time of one training step (from one batch to the next: sampling, the inner attacks,
  the loss, backward, optimizer), what the progress bar's img/s reports;
* compute floor s: the forward/backward passes the step must do, timed where they run: image and
  text tower forwards (``Backbone.image_features`` / ``text_features``, tokenization excluded),
  the masked LM's forwards, every backward (inner attack gradients and the training step's), and
  the optimizer update (gradient clipping + AdamW);
* × floor = step ÷ compute floor: what everything else (tokenization, the text attack's candidate
  bookkeeping, data, Python) adds. Target: ≤ 1.3×.
* tokenize s, text fwd / rows: tokenization seconds, text-encoder calls and texts encoded per step.

Not a test: figures are printed, never asserted. Setup (building pools, e.g. EDA's captions for the
whole training split, and loading the masked LM) is reported separately; it runs once per training.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from _machine import add_threads_argument, apply_threads, machine_line
from rich.console import Console
from rich.table import Table

from vladv.experiment import make_context, resolve
from vladv.training import PairSampler

DEFAULT = "tecoa,fare,mat,mat+eda"


class Meter:
    """Seconds and calls of the wrapped functions while ``on`` (nested calls count once)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.rows = 0
        self.depth = 0

    def wrap(self, fn: Callable, rows: Callable[..., int] | None = None) -> Callable:
        meter = self

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if meter.depth:
                return fn(*args, **kwargs)
            meter.depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                meter.seconds += time.perf_counter() - start
                meter.calls += 1
                meter.rows += rows(*args, **kwargs) if rows is not None else 0
                meter.depth -= 1

        wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapped

    def take(self) -> tuple[float, int, int]:
        out = (self.seconds, self.calls, self.rows)
        self.seconds, self.calls, self.rows = 0.0, 0, 0
        return out


def _patch(owner: Any, name: str, meter: Meter, rows: Callable[..., int] | None = None) -> None:
    setattr(owner, name, meter.wrap(getattr(owner, name), rows))


class Probe:
    """Meters on the passes that make the floor, and step boundaries from the sampler."""

    def __init__(self, backbone_cls: type) -> None:
        self.floor = Meter()  # one meter: forwards, backwards and updates never nest in each other
        self.text = Meter()
        self.tokenize = Meter()
        cls = backbone_cls
        _patch(cls, "image_features", self.floor)
        _patch(
            cls,
            "text_features",
            self.text,
            rows=lambda self_, tokens: len(
                tokens["input_ids"] if isinstance(tokens, dict) else tokens
            ),
        )
        _patch(cls, "tokenize", self.tokenize)
        _patch(torch.autograd, "grad", self.floor)
        _patch(torch.Tensor, "backward", self.floor)
        _patch(torch.nn.utils, "clip_grad_norm_", self.floor)
        _patch(torch.optim.AdamW, "step", self.floor)
        from vladv.kit import mlm

        real_forward = mlm.MaskedLM._forward
        probe = self

        def forward(self_: Any, *args: Any, **kwargs: Any) -> Any:
            model = self_.model
            if not hasattr(model.forward, "__wrapped__"):
                model.forward = probe.floor.wrap(model.forward)
            return real_forward(self_, *args, **kwargs)

        mlm.MaskedLM._forward = forward
        self.steps: list[dict[str, float]] = []
        real_batches = PairSampler.batches

        def batches(sampler: PairSampler, *args: Any, **kwargs: Any) -> Iterator[Any]:
            last = None
            for batch in real_batches(sampler, *args, **kwargs):
                now = time.perf_counter()
                if last is not None:
                    self._close(now - last)
                else:
                    self.floor.take(), self.text.take(), self.tokenize.take()
                last = now
                yield batch
            if last is not None:
                self._close(time.perf_counter() - last)

        PairSampler.batches = batches

    def _close(self, seconds: float) -> None:
        floor, _, _ = self.floor.take()
        text_s, text_calls, text_rows = self.text.take()
        tok_s, _, _ = self.tokenize.take()
        self.steps.append(
            {
                "step": seconds,
                "floor": floor + text_s,
                "text_calls": text_calls,
                "text_rows": text_rows,
                "tokenize": tok_s,
            }
        )


def run_defense(
    spec: str, backbone, train, ctx, probe: Probe, steps: int, warmup: int, batch_size: int | None
) -> tuple[list[dict[str, float]], float]:
    """Train a copy of ``backbone`` for warmup + steps steps; the timed steps and setup seconds."""
    name, *augs = spec.split("+")
    given = {"steps": str(warmup + steps)}
    if batch_size:
        given["batch_size"] = str(batch_size)
    defense = resolve("defense", name, given).build(ctx)
    augmenters = [resolve("augmenter", a).build(ctx) for a in augs]
    model = copy.deepcopy(backbone)
    probe.steps = []
    start = time.perf_counter()
    first: list[float] = []
    real_close = probe._close

    def close(seconds: float) -> None:
        if not first:
            first.append(time.perf_counter() - seconds - start)
        real_close(seconds)

    probe._close = close  # type: ignore[method-assign]
    try:
        defense.fit(model, train, augmenters)
    finally:
        probe._close = real_close  # type: ignore[method-assign]
    return probe.steps[warmup:], (first[0] if first else 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--defenses", default=DEFAULT, help=f"comma-separated (default {DEFAULT})")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per defense and round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=1, help="round-robin repetitions")
    parser.add_argument("--batch-size", type=int, default=0, help="0: each defense's default")
    parser.add_argument("--backbone", default="clip")
    parser.add_argument("--dataset", default="synthetic-aerial")
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="fp32")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    apply_threads(args)
    console = Console(width=max(Console().width, 120))
    ctx = make_context(args.device, args.precision, seed=0, progress=False)
    console.print(machine_line(ctx, args.precision))
    backbone = resolve("backbone", args.backbone).build(ctx).to(ctx.device).eval()
    train = resolve("dataset", args.dataset).build(ctx, "train")
    probe = Probe(type(backbone))
    names = [d.strip() for d in args.defenses.split(",") if d.strip()]
    timed: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    setup: dict[str, float] = {}
    for _ in range(args.rounds):
        for name in names:
            steps, first = run_defense(
                name, backbone, train, ctx, probe, args.steps, args.warmup, args.batch_size or None
            )
            timed[name] += steps
            setup[name] = first
    table = Table(
        title=f"defense training steps ({ctx.device}; median of {args.rounds} × {args.steps} steps)"
    )
    for col in (
        "defense",
        "step s",
        "compute floor s",
        "× floor",
        "tokenize s",
        "text fwd",
        "texts encoded",
        "setup s",
    ):
        table.add_column(col, justify="left" if col == "defense" else "right")
    for name in names:
        rows = timed[name]
        if not rows:
            continue

        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        ratio = statistics.median(r["step"] / r["floor"] for r in rows if r["floor"])
        table.add_row(
            name,
            f"{med('step'):.3f}",
            f"{med('floor'):.3f}",
            f"{ratio:.2f}×",
            f"{med('tokenize'):.3f}",
            f"{med('text_calls'):.0f}",
            f"{med('text_rows'):.0f}",
            f"{setup[name]:.1f}",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The common trainer that defenses use: sampling, optimization, progress, checkpoints, resume.

- :class:`PairSampler` streams deterministic training batches: each epoch a seeded permutation of
  the images; each image appears at most once per batch (so no batch holds two positives of one
  image) with one text drawn from its pool (ground-truth captions ∪ augmenter texts). Under
  torch.distributed each rank takes an interleaved share of every global batch and the model is
  wrapped in DistributedDataParallel (gradients averaged over ranks).
- :func:`train` runs AdamW with linear warmup + cosine decay, gradient clipping, autocast (bf16
  on CUDA, see :func:`train_autocast`), a rich progress bar with
  loss and throughput, and checkpoints every ``checkpoint_every`` steps into the defense's
  ``workdir``: weights as safetensors, optimizer/scheduler state as a ``weights_only`` torch file.
  Rerunning after an interruption resumes from the last checkpoint; results equal an
  uninterrupted run because every random draw is keyed by (seed, step).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.markup import escape
from rich.progress import TextColumn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from vladv.backbone import Backbone
from vladv.checkpoints import (
    atomic_torch_save,
    load_into,
    load_state_dict,
    load_torch_file,
    read_metadata,
    save_state_dict,
)
from vladv.console import get_console, make_progress
from vladv.distributed import barrier, is_distributed, is_main, rank, world_size
from vladv.errors import CheckpointError
from vladv.options import MAX_TRAIN_STEPS, option
from vladv.seeds import derive_seed
from vladv.types import Context, ImageTextDataset


def step_generator(seed: int, step: int, *salt: object) -> torch.Generator:
    """A CPU generator for one training step (same seed and step → same draws, across resumes)."""
    return torch.Generator().manual_seed(derive_seed(seed, step, *salt))


def contrastive_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over a batch of aligned pairs (row i ↔ column i)."""
    logits = logit_scale * image_emb.float() @ text_emb.float().T
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@dataclass(frozen=True)
class TrainBatch:
    """One training step's batch, as a loss function receives it from :func:`train`."""

    step: int
    images: torch.Tensor  # (B, 3, H, W) in [0, 1] on the device
    texts: list[str]  # one text per image, drawn from its pool
    image_ids: torch.Tensor  # (B,) dataset indices


class _StepBatches(Sampler[list[int]]):
    """Image-index batches for steps ``start..steps-1``: a seeded permutation per epoch."""

    def __init__(self, n_images: int, batch_size: int, steps: int, seed: int, start: int = 0):
        self.n, self.bs, self.steps, self.seed, self.start = (
            n_images,
            batch_size,
            steps,
            seed,
            start,
        )
        self.per_epoch = max(n_images // batch_size, 1)

    def indices(self, step: int) -> list[int]:
        """This rank's share of the step's global batch (all of it in a single process)."""
        epoch, offset = divmod(step, self.per_epoch)
        perm = torch.randperm(
            self.n, generator=torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
        )
        return perm[offset * self.bs : (offset + 1) * self.bs][rank() :: world_size()].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.steps):
            yield self.indices(step)

    def __len__(self) -> int:
        return self.steps - self.start


def _collate(items: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([x for x, _ in items]), torch.tensor([i for _, i in items])


class PairSampler:
    """Deterministic training batches of images with one pool text each."""

    def __init__(
        self,
        dataset: ImageTextDataset,
        batch_size: int,
        seed: int,
        pools: Sequence[Sequence[str]] | None = None,
        num_workers: int = 0,
    ):
        if len(dataset) < 2:
            raise ValueError("training needs at least two images")
        self.dataset = dataset
        self.batch_size = min(batch_size, len(dataset))
        self.seed = seed
        self.num_workers = num_workers
        self.pools = [list(p) for p in pools] if pools is not None else dataset.image_captions()

    def batches(self, steps: int, start: int, device: torch.device) -> Iterator[TrainBatch]:
        sampler = _StepBatches(len(self.dataset), self.batch_size, steps, self.seed, start)
        loader = DataLoader(
            self.dataset, batch_sampler=sampler, collate_fn=_collate, num_workers=self.num_workers
        )
        for step, (images, ids) in enumerate(loader, start=start):
            # the text of image i at a step depends on (seed, step, i) only: same on any rank
            texts = [
                self.pools[i][derive_seed(self.seed, step, "text", i) % len(self.pools[i])]
                for i in ids.tolist()
            ]
            yield TrainBatch(step, images.to(device, non_blocking=True), texts, ids)


@dataclass(frozen=True)
class TrainingOptions:
    """Optimization options shared by the training defenses (subclass to add your own)."""

    steps: int = option(300, "optimizer steps", min=1, max=MAX_TRAIN_STEPS)
    batch_size: int = option(128, "images per step (one text each)", min=2)
    lr: float = option(3e-4, "peak AdamW learning rate", min=0)
    weight_decay: float = option(0.05, "AdamW weight decay", min=0)
    warmup: int = option(20, "linear warmup steps", min=0)
    grad_clip: float = option(1.0, "max gradient norm (0 = off)", min=0)
    checkpoint_every: int = option(50, "steps between resumable checkpoints", min=1)

    def schedule(self) -> Schedule:
        return Schedule(
            steps=self.steps,
            lr=self.lr,
            weight_decay=self.weight_decay,
            warmup=min(self.warmup, self.steps),
            grad_clip=self.grad_clip,
            checkpoint_every=self.checkpoint_every,
        )


@dataclass(frozen=True)
class Schedule:
    """What :func:`train` needs of the options: steps, AdamW settings, warmup, clipping,
    checkpoints."""

    steps: int
    lr: float
    weight_decay: float = 0.1
    warmup: int = 0
    grad_clip: float = 1.0
    checkpoint_every: int = 50

    def factor(self, step: int) -> float:
        """Linear warmup to 1, then cosine decay to 0 at ``steps``."""
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(self.steps - self.warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train_autocast(ctx: Context) -> contextlib.AbstractContextManager:
    """Autocast for training: on CUDA always (bf16, or fp16 with ``--precision fp16``); on other
    devices only with a reduced ``--precision``."""
    if ctx.device.type == "cuda":
        dtype = torch.float16 if ctx.precision == "fp16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)
    return ctx.autocast()


LossFn = Callable[[TrainBatch], torch.Tensor]


def train(
    model: Backbone,
    parameters: Sequence[torch.nn.Parameter],
    sampler: PairSampler,
    loss_fn: LossFn,
    schedule: Schedule,
    ctx: Context,
    workdir: Path | None,
    label: str = "train",
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Optimize ``parameters`` of ``model`` on ``loss_fn``; resume from ``workdir`` if possible.

    Parameters not listed are frozen (``requires_grad=False``) for the duration. Returns the
    loss of every step run in this call.
    """
    params = list(parameters)
    trainable = {id(p) for p in params}
    saved_flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
    optimizer = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.factor)
    start = _resume(model, optimizer, scheduler, workdir, schedule.steps)
    compute_loss: Callable[[TrainBatch], torch.Tensor] = loss_fn
    if is_distributed():  # DistributedDataParallel over a module whose forward is the loss
        ddp = DistributedDataParallel(
            _LossModule(model, loss_fn),
            device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
        )
        compute_loss = ddp
    console = get_console(ctx)
    if start:
        console.print(f"[dim]{label}: resuming from step {start}/{schedule.steps}[/]")
    losses: list[float] = []
    model.train()
    try:
        with make_progress(
            ctx,
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[rate]:.0f} img/s"),
        ) as progress:
            task = progress.add_task(
                label, total=schedule.steps, completed=start, loss=float("nan"), rate=0.0
            )
            tick = time.perf_counter()
            for batch in sampler.batches(schedule.steps, start, ctx.device):
                with train_autocast(ctx):
                    loss = compute_loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.float().backward()
                if schedule.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, schedule.grad_clip)
                optimizer.step()
                scheduler.step()
                with torch.no_grad():
                    model.logit_scale_param.clamp_(0, math.log(100))
                value = float(loss.detach())
                losses.append(value)
                now = time.perf_counter()
                progress.update(
                    task, advance=1, loss=value, rate=len(batch.texts) / max(now - tick, 1e-9)
                )
                tick = now
                done = batch.step + 1
                if workdir is not None and (
                    done % schedule.checkpoint_every == 0 or done == schedule.steps
                ):
                    if is_main():
                        _checkpoint(model, optimizer, scheduler, done, workdir)
                    barrier()
                if on_step is not None:
                    on_step(done, value)
    finally:
        model.eval()
        for n, p in model.named_parameters():
            p.requires_grad_(saved_flags[n])
    return losses


class _LossModule(torch.nn.Module):
    """Lets DistributedDataParallel wrap a loss function: ``forward(batch)`` is the loss."""

    def __init__(self, model: Backbone, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: TrainBatch) -> torch.Tensor:
        return self.loss_fn(batch)


def _checkpoint(
    model: Backbone, optimizer: torch.optim.Optimizer, scheduler, step: int, workdir: Path
) -> None:
    """Weights (safetensors, tagged with the step) and optimizer state, each written through a
    temporary file unique to this process: concurrent trainings never share a temporary file."""
    workdir.mkdir(parents=True, exist_ok=True)
    save_state_dict(model.state_dict(), workdir / "last.safetensors", metadata={"step": str(step)})
    state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    atomic_torch_save(state, workdir / "train_state.pt")


def _resume(
    model: Backbone,
    optimizer: torch.optim.Optimizer,
    scheduler,
    workdir: Path | None,
    steps: int | None = None,
) -> int:
    """The step to resume from (0: start afresh), with model and optimizer restored.

    An unusable resume state (corrupt, a pickle payload, from another model, weights and
    optimizer state of different steps) is discarded with one warning line: training starts
    afresh and overwrites it at its first checkpoint; the model is left as it was.
    """
    if workdir is None or not (workdir / "train_state.pt").exists():
        return 0
    if not (workdir / "last.safetensors").exists():
        return 0
    backup = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    fresh_optimizer, fresh_scheduler = copy.deepcopy(optimizer.state_dict()), scheduler.state_dict()
    try:
        state = load_torch_file(workdir / "train_state.pt")
        if not isinstance(state, dict) or not {"step", "optimizer", "scheduler"} <= set(state):
            raise CheckpointError("train_state.pt is not a vladv training state")
        step = state["step"]
        if (
            isinstance(step, bool)
            or not isinstance(step, int)
            or not (0 < step <= (steps if steps is not None else step))
        ):
            raise CheckpointError(f"step {step!r:.40} is outside this schedule")
        if read_metadata(workdir / "last.safetensors").get("step", str(step)) != str(step):
            raise CheckpointError("weights and optimizer state are from different steps")
        load_into(
            model,
            load_state_dict(workdir / "last.safetensors"),
            workdir / "last.safetensors",
            "the model being trained",
        )
        optimizer.load_state_dict(state["optimizer"])
        for param, slots in optimizer.state.items():
            for value in slots.values():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise CheckpointError("optimizer state does not fit the parameters")
        scheduler.load_state_dict(state["scheduler"])
    except (
        CheckpointError,
        RuntimeError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
    ) as exc:
        model.load_state_dict(backup)
        optimizer.load_state_dict(fresh_optimizer)
        scheduler.load_state_dict(fresh_scheduler)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        get_console().print(
            f"[yellow]warning[/]: discarding unusable resume state in "
            f"{escape(str(workdir))} ({escape(reason)}); training afresh",
            highlight=False,
            soft_wrap=True,
        )
        return 0
    return step

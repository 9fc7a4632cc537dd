"""torch.distributed helpers: process group from torchrun's environment, sharding, gathering.

Under ``torchrun --nproc_per_node N -m vladv run ...`` (or ``vladv run --nproc N``) every rank
evaluates a round-robin share of the *batches* of the test split — batches are the same as in a
single process, so every adversarial example is the same — and the per-sample outcomes are
gathered on every rank. Rank 0 writes records and draws progress. CPUs use the gloo backend,
GPUs NCCL.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (no-op in a single process); return the device.

    On CUDA, rank ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK``.
    """
    if env_world_size() <= 1:
        return device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_shutdown)
    return device


def _shutdown() -> None:
    """Leave the process group before the interpreter exits: gloo's threads still running at
    exit abort the process ("terminate called without an active exception") now and then."""
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.barrier()
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def batch_shards(
    n_items: int, batch_size: int, rank_: int | None = None, world: int | None = None
) -> list[int]:
    """Item indices of this rank's batches: batch b (``b·bs .. (b+1)·bs``) goes to rank b % world.

    Feeding the result to a loader with the same ``batch_size`` reproduces exactly the batches a
    single process would see (only the very last batch can be short, and it stays last).
    """
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    out: list[int] = []
    for b, start in enumerate(range(0, n_items, batch_size)):
        if b % world == rank_:
            out.extend(range(start, min(start + batch_size, n_items)))
    return out


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a list of one item in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_rows(rows: torch.Tensor, ids: torch.Tensor, total: int) -> torch.Tensor:
    """Assemble a (total, ...) CPU tensor from every rank's ``rows`` at positions ``ids``."""
    parts = gather_objects((ids.cpu(), rows.cpu()))
    full = torch.empty((total, *rows.shape[1:]), dtype=rows.dtype)
    for part_ids, part_rows in parts:
        full[part_ids] = part_rows
    return full


def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> None:
    """In-place mean over ranks."""
    if not is_distributed():
        return
    for t in tensors:
        dist.all_reduce(t)
        t.div_(world_size())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Re-run ``vladv <argv>`` under torchrun with ``nproc`` processes; return its exit code."""
    import subprocess

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "vladv",
        *argv,
    ]
    return subprocess.run(cmd, check=False).returncode

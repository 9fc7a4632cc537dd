"""What every benchmark prints first (the machine, its load and torch's threads), and the call
meter the attack benchmarks patch onto the functions they count."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from vladv.results import cpu_name


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch's CPU threads (0: torch's default)."""
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default; 1 is steadier on a busy host)",
    )


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads > 0:
        torch.set_num_threads(args.threads)


def machine_line(ctx: Any = None, precision: str | None = None) -> str:
    """CPUs, load average at start, torch and its threads, and the device of ``ctx`` if given."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    line = (
        f"[bold]machine[/]: {os.cpu_count()} CPUs (load average {load:.1f} at start), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    if ctx is None:
        return f"{line}, {cpu_name()}"
    device = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else cpu_name()
    return (
        f"{line}, device {ctx.device} ({device}), precision {precision}, "
        f"python {sys.version.split()[0]}"
    )


def gemm_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """This machine's fp32 matrix-product rate (GFLOP/s) at torch's current threads: the best
    of repeated ``size``³ products over about ``seconds``. A model's step divided by its FLOPs
    at this rate is its *FLOP floor* on this machine, so a ratio to it holds across CPUs."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


class Meter:
    """Counts calls and seconds of one function (patched onto an instance or a class)."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0

    def wrap(self, fn: Callable, sync: Callable[[], None] = lambda: None) -> Callable:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            sync()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            self.calls += 1
            self.seconds += time.perf_counter() - start
            return out

        return wrapped

    def reset(self) -> None:
        self.calls, self.seconds = 0, 0.0

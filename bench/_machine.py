"""What every benchmark prints first: the machine, its load and torch's threads."""

from __future__ import annotations

import argparse
import os
import sys
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

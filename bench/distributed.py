"""Benchmark the attack-evaluation stage on 1 vs N processes (torchrun, gloo on CPU).

    python bench/distributed.py                         # pgd on the embedded default, 1 vs 2
    python bench/distributed.py --attack sga --nproc 2 --device cuda --precision bf16

Runs ``vladv run`` once per process count into a fresh output folder (the embedded model and
data are built first, outside the timing) and reads the ``timings`` the records carry: the
attack stage (``timings.attack``) and the clean gallery (``timings.clean``). Also checks that
the metrics are identical. Not a test: figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table


def run(nproc: int, args: argparse.Namespace, out: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "vladv",
        "run",
        "--attack",
        args.attack,
        "--output",
        str(out),
        "--quiet",
        "--json",
        "--nproc",
        str(nproc),
        "--batch-size",
        str(args.batch_size),
        "--precision",
        args.precision,
        *(["--device", args.device] if args.device else []),
        *sum((["--attack-opt", o] for o in args.attack_opt), []),
        *sum((["--dataset-opt", o] for o in args.dataset_opt), []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, args.threads // nproc))}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        sys.exit(f"vladv run --nproc {nproc} failed:\n{res.stderr[-3000:]}")
    [record] = json.loads(res.stdout[res.stdout.index("[") :])
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attack", default="pgd")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="CPU threads in total, split over the processes",
    )
    parser.add_argument("--attack-opt", action="append", default=[])
    parser.add_argument("--dataset-opt", action="append", default=[])
    args = parser.parse_args()
    console = Console()
    subprocess.run(
        [sys.executable, "-m", "vladv", "pretrain"], check=True, capture_output=True
    )  # build artifacts outside the timing
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted({1, args.nproc}):
            rows.append((n, run(n, args, Path(tmp) / f"n{n}")))
    base = rows[0][1]
    table = Table(title=f"attack evaluation, {args.attack}: 1 vs {args.nproc} processes")
    for col in ("processes", "clean s", "attack s", "speed-up", "same metrics"):
        table.add_column(col, justify="right")
    for n, rec in rows:
        t = rec["timings"]
        table.add_row(
            str(n),
            f"{t['clean']:.1f}",
            f"{t['attack']:.1f}",
            f"{base['timings']['attack'] / t['attack']:.2f}×",
            str(rec["metrics"] == base["metrics"]),
        )
    console.print(table)
    console.print(
        f"[dim]{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"device {base['config']['runtime']['device']}, torch "
        f"{base['versions']['torch']}, {args.threads} threads in total[/]"
    )


if __name__ == "__main__":
    main()

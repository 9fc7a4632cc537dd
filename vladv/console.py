"""Console and progress bars shared by the CLI, the runner and plugins."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vladv.types import Context

T = TypeVar("T")

_default_console: Console | None = None


def get_console(ctx: Context | None = None) -> Console:
    """The context's console, else a shared stderr console."""
    global _default_console
    if ctx is not None and ctx.console is not None:
        return ctx.console
    if _default_console is None:
        _default_console = Console(stderr=True)
    return _default_console


def dim_notice(ctx: Context | None = None) -> Callable[[str], None]:
    """Prints one dim line on the context's console (e.g. waiting for another process)."""
    console = get_console(ctx)
    return lambda msg: console.print(f"[dim]{escape(msg)}[/]", highlight=False)


def make_progress(ctx: Context | None = None, *extra_columns) -> Progress:
    """A rich Progress with bar, counts, elapsed and remaining time (disabled when quiet)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=get_console(ctx),
        transient=False,
        disable=ctx is not None and not ctx.progress,
    )


def track(
    items: Iterable[T], description: str, ctx: Context | None = None, total: int | None = None
) -> Iterator[T]:
    """Iterate ``items`` under a progress bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress(ctx) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)

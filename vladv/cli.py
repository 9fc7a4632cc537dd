"""The ``vladv`` command line (Typer + rich).

User errors (unknown plugins, bad options, bad data files) print one red line and exit 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vladv import __version__
from vladv.errors import VladvError, os_error_message
from vladv.options import describe_options, parse_assignments
from vladv.types import KINDS

app = typer.Typer(
    name="vladv",
    help="Attack and defend vision-language models: one command, one result schema.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped or redirected output gets a wide console, so result tables never truncate their numbers.
console = Console(width=None if sys.stdout.isatty() else 240)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
MAX_NPROC = 256


def print_error(message: str) -> None:
    """The one error line: ``error: <message>`` on stderr, markup in the message shown as text."""
    line = " ".join(message.split())
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)


def user_errors(func: F) -> F:
    """Turn :class:`VladvError` into a one-line message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VladvError as exc:
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # the environment refused a read or write vladv did not foresee
            print_error(os_error_message(exc, "access", exc.filename or "a file"))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print(
                "[yellow]interrupted[/]: finished runs are saved; rerun the same command to resume"
            )
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"vladv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
):
    """vladv: attack and defend vision-language models."""


def _argv_without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _load_plugin_files(paths: list[Path] | None) -> None:
    from vladv.plugins import get_registry

    for path in paths or []:
        get_registry().register_file(path)


def _opt(kind: str) -> Any:
    """``--KIND-opt [NAME.]KEY=VALUE``: the same prefix rule for every kind (experiment files
    and the Python API's ``*_options`` take the same keys)."""
    return typer.Option(
        metavar="[NAME.]KEY=VALUE",
        help=f"{kind.capitalize()} option (repeatable); NAME. targets one {kind}.",
    )


def _listed(metavar: str, text: str) -> Any:
    """A repeatable option whose values are ``metavar``s; "(repeatable)" ends its help."""
    return typer.Option(metavar=metavar, help=f"{text} (repeatable).")


@app.command(
    # the help text (a docstring would not fit in 100 columns)
    help="Run a grid of backbones × datasets × defenses × attacks × seeds; "
    "write one record per cell.",
    epilog="""
[bold]Examples[/]

  vladv run                                    [dim]# clean retrieval, embedded default[/]

  vladv run --backbone clip --defense mat --attack sga

  vladv run --defense none --defense tecoa --defense mat+eda --attack pgd --attack sga \
--seed 0 --seed 1

  vladv run -c experiments/synthetic_aerial.toml --dry-run

  vladv run --attack pgd --attack sga --attack-opt eps=4/255 --attack-opt sga.steps=20

  vladv run --dataset karpathy --dataset-opt path=flickr30k_test.json --dataset-opt image_root=imgs
""",
)
@user_errors
def run(
    backbone: Annotated[
        list[str] | None, typer.Option(help="Backbone plugin (repeatable; default clip).")
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="Dataset plugin (repeatable; default synthetic-aerial)."),
    ] = None,
    defense: Annotated[
        list[str] | None,
        typer.Option(
            help="Defense, optionally with augmenters: mat+eda (repeatable; default none)."
        ),
    ] = None,
    attack: Annotated[
        list[str] | None,
        typer.Option(help="Attack plugin (repeatable); none = clean evaluation only."),
    ] = None,
    augment: Annotated[
        list[str] | None,
        typer.Option(help="Augmenter added to every training defense (repeatable)."),
    ] = None,
    model: Annotated[
        list[str] | None,
        _listed(
            "SPEC",
            "Evaluated model BACKBONE[(K=V,...)][/DEFENSE[+AUG]] instead of --backbone × --defense",
        ),
    ] = None,
    source: Annotated[
        list[str] | None,
        _listed(
            "SPEC",
            "Model the attacks are crafted on, same form as --model; self (default) = white-box",
        ),
    ] = None,
    part: Annotated[
        list[str] | None,
        _listed(
            "PART",
            "Half of each adversarial pair to evaluate: both (default), image (captions "
            "kept clean) or text (images kept clean)",
        ),
    ] = None,
    backbone_opt: Annotated[list[str] | None, _opt("backbone")] = None,
    dataset_opt: Annotated[list[str] | None, _opt("dataset")] = None,
    attack_opt: Annotated[
        list[str] | None,
        _opt("attack"),
    ] = None,
    defense_opt: Annotated[list[str] | None, _opt("defense")] = None,
    augment_opt: Annotated[list[str] | None, _opt("augmenter")] = None,
    seed: Annotated[
        list[int] | None, typer.Option(help="Seed of every random choice (repeatable; default 0).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML experiment file; flags override it.")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda if available).")
    ] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 (default), bf16 or fp16.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per batch, with all their captions (default 32).")
    ] = None,
    num_workers: Annotated[
        int | None, typer.Option(help="DataLoader workers for image I/O.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Directory for the JSON records (default: runs/<grid id>).")
    ] = None,
    save_examples: Annotated[
        int | None,
        typer.Option(help="Save this many adversarial examples per attack (for `vladv report`)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the resolved grid and exit.")] = False,
    force: Annotated[
        bool, typer.Option(help="Accept a different grid in an existing output directory.")
    ] = False,
    recompute: Annotated[bool, typer.Option(help="Recompute cells whose record exists.")] = False,
    plugin: Annotated[
        list[Path] | None, typer.Option(help="Load a one-off plugin from a .py file (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the records as JSON.")] = False,
    nproc: Annotated[
        int, typer.Option(help="Processes to launch with torchrun (gloo on CPU, NCCL on GPUs).")
    ] = 1,
) -> None:
    from vladv import distributed
    from vladv.experiment import run as run_experiment
    from vladv.render import dry_run_table, summary_table

    if not 1 <= nproc <= MAX_NPROC:
        raise VladvError(f"--nproc must lie in [1, {MAX_NPROC}]; got {nproc}")
    if nproc > 1 and distributed.env_world_size() == 1:
        raise typer.Exit(distributed.launch(nproc, _argv_without_nproc(sys.argv[1:])))
    _load_plugin_files(plugin)
    records = run_experiment(  # vladv.run, with its defaults: only the flags given are passed
        backbone=backbone,
        dataset=dataset,
        defense=defense,
        attack=attack,
        augment=augment,
        seed=seed,
        model=model,
        source=source,
        part=part,
        config=config,
        device=device,
        precision=precision,
        batch_size=batch_size,
        output=output,
        num_workers=num_workers,
        progress=not quiet,
        force=force,
        recompute=recompute,
        save_examples=save_examples,
        console=err_console,
        backbone_options=parse_assignments(backbone_opt, "--backbone-opt"),
        dataset_options=parse_assignments(dataset_opt, "--dataset-opt"),
        attack_options=parse_assignments(attack_opt, "--attack-opt"),
        defense_options=parse_assignments(defense_opt, "--defense-opt"),
        augment_options=parse_assignments(augment_opt, "--augment-opt"),
        dry_run=dry_run,
    )
    if dry_run:
        if json_out:
            console.print_json(json.dumps(records))
        else:
            console.print(dry_run_table(records, records.plan.res))
        return
    if not distributed.is_main():
        return
    if json_out:
        console.print_json(json.dumps(records))
        return
    console.print(summary_table(records))
    console.print(
        f"[dim]{len(records)} record(s) in {escape(str(records.output))}/ — `vladv "
        f"report {escape(str(records.output))}` for tables and plots[/]"
    )


@app.command(
    epilog="""
[bold]Examples[/]

  vladv report runs/synthetic-aerial

  vladv report runs/synthetic-aerial --output paper/figures
"""
)
@user_errors
def report(
    directory: Annotated[Path, typer.Argument(help="Directory of result records.")],
    output: Annotated[
        Path | None, typer.Option(help="Where to write the report (default: DIRECTORY/report).")
    ] = None,
) -> None:
    """Summarize records: mean ± std over seeds, CSV and Markdown tables, plots, HTML gallery."""
    from rich.markup import escape

    from vladv.reports import aggregate_table
    from vladv.reports import report as make_report

    result = make_report(directory, output)
    for warning in result["warnings"]:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    console.print(aggregate_table(result["rows"], title=f"vladv report: {directory}"))
    for name, path in result["files"].items():
        console.print(f"[dim]{name:>16}[/] {escape(path)}", highlight=False)


@app.command(
    epilog="""
[bold]Examples[/]

  vladv pretrain             [dim]# build every embedded model (tiny CLIP, ...)[/]

  vladv pretrain clip --force
"""
)
@user_errors
def pretrain(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Plugins whose artifacts to build (default: all that have any)."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Build here even when cached or shipped prebuilt.")
    ] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N.")] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Build the embedded default models (cached under VLADV_HOME)."""
    from vladv.experiment import make_context
    from vladv.options import resolve_options
    from vladv.plugins import get_registry

    registry = get_registry()
    ctx = make_context(device, seed=seed, console=err_console)
    order = ("dataset", "backbone", "attack", "augmenter", "defense")  # what others build on first
    todo = [
        (kind, name, e.spec)
        for kind in sorted(KINDS, key=order.index)
        for name, e in registry.specs(kind).items()
        if e.spec.prepare is not None
    ]
    if names:
        known = {n for _, n, _ in todo}
        for n in names:
            if n not in known:
                from vladv.errors import UnknownPluginError

                raise UnknownPluginError("plugin with artifacts", n, known)
        todo = [t for t in todo if t[1] in names]
    for kind, name, spec in todo:
        err_console.print(f"[bold]{kind} {name}[/]: preparing")
        options = resolve_options(f"{kind} '{name}'", spec.options, {})
        spec.prepare(options, ctx, force=force)  # type: ignore[misc]
    console.print(
        f"[green]ready[/]: {', '.join(f'{k} {n}' for k, n, _ in todo) or 'nothing to do'}"
    )


@app.command(
    epilog="""
[bold]Examples[/]

  vladv plugins

  vladv plugins --json

  vladv plugins --options pgd
"""
)
@user_errors
def plugins(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    options: Annotated[
        str | None, typer.Option(help="Show the options of the plugin with this name.")
    ] = None,
    plugin: Annotated[list[Path] | None, typer.Option(help="Also load a .py plugin file.")] = None,
) -> None:
    """List installed plugins: what each provides, its distribution and version; broken ones too."""
    from vladv.plugins import get_registry

    _load_plugin_files(plugin)
    registry = get_registry()
    rows = []
    for kind in KINDS:
        for name, entry in sorted(registry.specs(kind).items()):
            rows.append(
                {
                    "kind": kind,
                    "name": name,
                    "plugin": entry.plugin.name,
                    "distribution": entry.plugin.distribution,
                    "version": entry.plugin.version,
                    "summary": entry.spec.summary,
                    "modality": getattr(entry.spec, "modality", None),
                    "options": describe_options(entry.spec.options),
                }
            )
    broken = [
        {
            "plugin": p.name,
            "module": p.module,
            "distribution": p.distribution,
            "version": p.version,
            "error": p.error,
        }
        for p in registry.broken()
    ]
    conflicts = [
        {"kind": k, "name": n, "plugins": [p.name for p in ps]}
        for (k, n), ps in registry.conflicts.items()
    ]
    if options is not None:
        match = [r for r in rows if r["name"] == options]
        if not match:
            from vladv.errors import UnknownPluginError

            raise UnknownPluginError("plugin", options, {r["name"] for r in rows})
        rows = match
    if json_out:
        console.print_json(json.dumps({"plugins": rows, "broken": broken, "conflicts": conflicts}))
        return
    if options is not None:
        for row in rows:
            table = Table(title=f"{row['kind']} {row['name']}: {escape(row['summary'])}")
            for col in ("option", "type", "default", "help"):
                table.add_column(col)
            for opt in row["options"]:
                table.add_row(
                    opt["name"],
                    escape(opt["type"]),
                    escape(repr(opt["default"])),
                    escape(opt["help"]),
                )
            console.print(table)
        return
    table = Table(title="vladv plugins")
    for col, style in (
        ("kind", "cyan"),
        ("name", "bold"),
        ("distribution", None),
        ("version", "dim"),
        ("summary", None),
    ):
        table.add_column(col, style=style)
    for r in rows:
        table.add_row(
            r["kind"],
            r["name"],
            escape(r["distribution"] or "in-process"),
            escape(r["version"] or ""),
            escape(r["summary"]),
        )
    console.print(table)
    for b in broken:
        detail = escape(f"{b['plugin']} ({b['distribution'] or '?'}): {b['error']}")
        console.print(f"[bold red]broken[/] {detail}", highlight=False, soft_wrap=True)
    for c in conflicts:
        console.print(
            f"[bold yellow]conflict[/] {c['kind']} '{c['name']}' is provided by "
            f"{' and '.join(c['plugins'])}",
            highlight=False,
        )


@app.command(
    "new-plugin",
    epilog="""
[bold]Examples[/]

  vladv new-plugin my-attack --kind attack

  vladv new-plugin my-data --kind dataset --dir ~/src
""",
)
@user_errors
def new_plugin(
    name: Annotated[str, typer.Argument(help="Plugin name: lower-case letters, digits and '-'.")],
    kind: Annotated[
        str, typer.Option(help="What it provides: attack, defense, augmenter, backbone or dataset.")
    ] = "attack",
    directory: Annotated[Path, typer.Option("--dir", help="Folder to create the package in.")] = (
        Path(".")
    ),
) -> None:
    """Write a plugin package vladv-NAME: pyproject with the entry point, module, passing test."""
    from vladv.errors import PluginError
    from vladv.plugins import get_registry
    from vladv.scaffold import new_plugin as scaffold

    if kind in KINDS and name in get_registry().specs(kind):
        raise PluginError(f"{kind} '{name}' is already installed; choose another name")
    folder = scaffold(name, kind, directory)
    console.print(
        f"[green]wrote[/] {escape(str(folder))}: cd there, then "
        + escape("pip install -e '.[test]' && python -m pytest"),
        highlight=False,
    )


def main() -> None:
    """Console-script entry point: usage errors are one line too (no usage panel)."""
    try:
        code = app(standalone_mode=False)
    except VladvError as exc:  # errors raised outside a command body
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except Exception as exc:
        if not any(c.__name__ == "ClickException" for c in type(exc).__mro__):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            app()  # the standalone path prints the help
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        print_error(exc.format_message() + hint)  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

"""Regenerate docs/cli.md from the Typer app: ``python docs/gen_cli.py > docs/cli.md``.

tests/test_docs.py fails when docs/cli.md differs from this output.
"""

from __future__ import annotations

import click
import typer.main

from vladv.cli import app


def _default(param: click.Parameter) -> str:
    if param.default is None or param.default == () or param.default == []:
        return ""
    if isinstance(param.default, bool):
        return "" if not param.default else "on"
    return f"`{param.default}`"


def render() -> str:
    root = typer.main.get_command(app)
    out = [
        "# CLI reference",
        "",
        "Generated from the Typer app by `python docs/gen_cli.py > docs/cli.md`; a test keeps",
        "it in sync. Every command also has `--help` with examples.",
        "",
        f"`vladv [--version] COMMAND`: {root.help}",
        "",
    ]
    for name, cmd in root.commands.items():
        out += [f"## `vladv {name}`", "", (cmd.help or "").strip(), ""]
        out += ["| option | default | meaning |", "| --- | --- | --- |"]
        for p in cmd.params:
            label = (
                ", ".join(f"`{o}`" for o in p.opts)
                if p.param_type_name == "option"
                else f"`{p.name.upper()}...`"
            )
            out.append(f"| {label} | {_default(p)} | {getattr(p, 'help', '') or ''} |")
        out.append("")
    out += [
        "## Exit codes",
        "",
        "| code | meaning |",
        "| --- | --- |",
        "| 0 | done (a flagged record prints one `warning:` line and still exits 0) |",
        "| 2 | a user error: one `error: ...` line on stderr, no traceback, nothing that existed "
        "before is changed |",
        "| 130 | interrupted (Ctrl-C): one line; finished records are kept, rerun to resume |",
        "",
        "See [reliability.md](reliability.md) for what is promised and how it is tested.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render(), end="")

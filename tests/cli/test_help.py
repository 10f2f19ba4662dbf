"""Every command's --help reads at 80 columns: no option name, default or help word is cut
short by rich (which marks a cut with "…")."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from deckhand.cli.app import build_app


def _commands() -> list[tuple[list[str], typer.core.TyperCommand]]:
    """(path, command) for the root and every group and command under it."""
    found = []

    def walk(path: list[str], command: typer.core.TyperCommand) -> None:
        found.append((path, command))
        if isinstance(command, typer.core.TyperGroup):
            ctx = typer.Context(command)
            for name in command.list_commands(ctx):
                walk([*path, name], command.get_command(ctx, name))

    walk([], typer.main.get_command(build_app()))
    # `plugin run` passes --help on to the plugin runner (an argparse parser)
    return [(path, command) for path, command in found if command.add_help_option]


COMMANDS = _commands()


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(["deckhand", *p]) for p, _ in COMMANDS])
def test_help_at_80_columns_cuts_nothing(path: list[str], command: typer.core.TyperCommand) -> None:
    result = CliRunner().invoke(build_app(), [*path, "--help"], env={"COLUMNS": "80"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    names = [opt for param in command.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")]
    assert not [name for name in names if name not in result.stdout], result.stdout
    cut = [line for line in result.stdout.splitlines() if "…" in line]
    assert not cut, "\n".join(cut)


def test_every_command_is_walked() -> None:
    walked = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "serve", "server", "env create", "deployments replace", "package inspect"} <= walked

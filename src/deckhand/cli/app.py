"""Root typer application: each command module defines its commands on a module-level
`app` (a `typer.Typer`), and `build_app` mounts them.

A module's `app` has a `name` when it is a command group (`deckhand package ...`); without
one, its commands and groups join the root (`deckhand serve`). Keep heavy imports inside
the command functions so that `deckhand --help` stays fast.
"""

from __future__ import annotations

import importlib

import typer

# One line per command module, in the order of `deckhand --help`.
COMMAND_MODULES = [
    "deckhand.cli.quickstart_commands",
    "deckhand.cli.package_commands",
    "deckhand.cli.serve_commands",
    "deckhand.cli.server_commands",
    "deckhand.cli.control_plane_commands",
    "deckhand.cli.rollout_commands",  # more `deployments` commands
    "deckhand.cli.agent_commands",
    "deckhand.cli.monitoring_commands",
    "deckhand.cli.accuracy_commands",
    "deckhand.cli.notification_commands",
    "deckhand.cli.plugin_commands",
]


def version() -> None:
    """Print the deckhand version."""
    from deckhand import __version__

    typer.echo(__version__)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="deckhand",
        help="deckhand: deploy models everywhere and keep them in step with the control plane.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )

    @app.callback()
    def _root() -> None:
        """deckhand: a self-hosted MLOps management agent."""

    app.command()(version)
    for name in COMMAND_MODULES:
        app.add_typer(importlib.import_module(name).app)
    return app

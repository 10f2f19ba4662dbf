"""Root typer application: each command group lives in its own module.

A command module exposes `register(app)`. Keep heavy imports inside the command
functions so that `deckhand --help` stays fast.
"""

from __future__ import annotations

import importlib

import typer

# One line per command module; each adds its commands or sub-apps to the root app.
COMMAND_MODULES = [
    "deckhand.cli.package_commands",
    "deckhand.cli.serve_commands",
    "deckhand.cli.plugin_commands",
    "deckhand.cli.agent_commands",
    "deckhand.cli.quickstart_commands",
    "deckhand.cli.server_commands",
    "deckhand.cli.control_plane_commands",
    "deckhand.cli.monitoring_commands",
]


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

    @app.command()
    def version() -> None:
        """Print the deckhand version."""
        from deckhand import __version__

        typer.echo(__version__)

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app

"""`deckhand plugin list` and `deckhand plugin run` (the runner; dispatched before typer
loads, see deckhand.cli.main — this entry only documents it in --help)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    plugin_app = typer.Typer(help="Plugins: list them, or run one action (same flags as bosun-plugin-runner).")
    app.add_typer(plugin_app, name="plugin")

    @plugin_app.command("list")
    def list_cmd(output: str = typer.Option("table", "--output", "-o", help="table or json")) -> None:
        """List built-in and installed (entry-point) plugins."""
        from deckhand.plugin.loader import list_plugins

        plugins = list_plugins()
        if output == "json":
            import json

            typer.echo(json.dumps([p.__dict__ for p in plugins], indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("name", "source", "class")
        for p in plugins:
            table.add_row(p.name, p.source, p.target)
        Console().print(table)

    @plugin_app.command(
        "run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
    )
    def run_cmd(ctx: typer.Context) -> None:
        """Run one plugin action: `deckhand plugin run --plugin P --action A --config F ...`."""
        from deckhand.plugin.runner import main as run_plugin

        raise typer.Exit(run_plugin(list(ctx.args), prog="deckhand plugin run"))

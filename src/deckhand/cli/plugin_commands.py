"""`deckhand plugin list` and `deckhand plugin run` (the runner; dispatched before typer
loads, see deckhand.cli.main — this entry only documents it in --help)."""

from __future__ import annotations

import typer

from deckhand.cli.output import Output, OutputOpt, print_json, print_table

app = typer.Typer(name="plugin", help="Plugins: list them, or run one action (same flags as bosun-plugin-runner).")


@app.command("list")
def list_cmd(output: OutputOpt = Output.table) -> None:
    """List built-in and installed (entry-point) plugins."""
    from deckhand.plugin.loader import list_plugins

    plugins = list_plugins()
    if output is Output.json:
        print_json([p.__dict__ for p in plugins])
        return
    print_table(None, ["name", "source", "class"], [[p.name, p.source, p.target] for p in plugins])


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False)
def run_cmd(ctx: typer.Context) -> None:
    """Run one plugin action: `deckhand plugin run --plugin P --action A --config F ...`."""
    from deckhand.plugin.runner import main as run_plugin

    raise typer.Exit(run_plugin(list(ctx.args), prog="deckhand plugin run"))

"""`deckhand quickstart`: control plane, agent and a local environment, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deckhand.cli.output import log_to_stderr

app = typer.Typer()


@app.command()
def quickstart(
    exit_after_demo: Annotated[
        bool, typer.Option("--exit-after-demo", help="exit 0 after the first prediction")
    ] = False,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="keep everything here (default: a new temp dir)")
    ] = None,
) -> None:
    """Deploy a demo model end to end on this machine and send it a prediction."""
    import logging

    from rich.console import Console

    from deckhand import quickstart as qs

    log_to_stderr(logging.WARNING)
    console = Console(highlight=False)
    try:
        qs.main(exit_after_demo, data_dir, lambda line: console.print(line, markup=False, soft_wrap=True))
    except qs.Interrupted as exc:
        console.print(f"quickstart {exc}", markup=False)
        raise typer.Exit(128 + exc.signum) from None
    except Exception as exc:
        console.print(f"quickstart failed: {exc}", style="red", markup=False)
        raise typer.Exit(1) from None

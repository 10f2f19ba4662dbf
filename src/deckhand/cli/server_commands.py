"""`deckhand server`: run the control plane (HTTP API, OpenAPI at /docs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("server")(server)


def server(
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", envvar="DECKHAND_DATA_DIR", help="Database and artifacts."),
    ] = Path("deckhand-data"),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", min=0, max=65535)] = 8000,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="DECKHAND_DATABASE_URL",
            help="SQLAlchemy URL, e.g. postgresql://user:pw@host/db (default: SQLite in DATA_DIR).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the control plane. The first start prints an admin token, once."""
    import logging

    import uvicorn

    from deckhand.server.app import create_app
    from deckhand.server.settings import ServerSettings

    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    settings = ServerSettings(data_dir=data_dir, host=host, port=port, database_url=database_url)
    try:
        application = create_app(settings)
    except Exception as exc:  # a bad URL or an unreachable database: say so, no traceback
        from deckhand.server.db.session import mask_database_url

        url = mask_database_url(settings.database_url or "")
        typer.echo(f"deckhand server: cannot open the database {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"deckhand control plane on {settings.url} (API docs: {settings.url}/docs)")
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=3,
    )

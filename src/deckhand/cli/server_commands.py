"""`deckhand server`: run the control plane (HTTP API, OpenAPI at /docs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from deckhand.cli import listener_options as lo
from deckhand.cli import package_limit_options as pkg
from deckhand.cli.output import fail, log_to_stderr, problems

# On SIGTERM/SIGINT, requests in flight get this long before they are cancelled. API calls
# finish in milliseconds; the agents' long polls are ended at once (`_long_poll_path`); a
# large package transfer would not be saved by a few more seconds either (an upload is sent
# again, a download is atomic and verified). The control plane must stop within 2 s.
GRACEFUL_SHUTDOWN_SECONDS = 1

app = typer.Typer()


@app.command("server", epilog=pkg.ENV_HELP)
def server(
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", envvar="DECKHAND_DATA_DIR", help="Database and artifacts."),
    ] = Path("deckhand-data"),
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", min=0, max=65535, metavar="PORT")] = 8000,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="DECKHAND_DATABASE_URL",
            help="SQLAlchemy URL, e.g. postgresql://user:pw@host/db (default: SQLite in DATA_DIR).",
        ),
    ] = None,
    artifact_store: Annotated[
        str | None,
        typer.Option(
            "--artifact-store",
            envvar="DECKHAND_ARTIFACT_STORE",
            metavar="DIR|URL",
            help="Where model packages are kept: a directory, or s3://BUCKET/PREFIX "
            "(default: DATA_DIR/artifacts; docs/control-plane.md).",
            rich_help_panel="Artifact store",
        ),
    ] = None,
    s3_endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--s3-endpoint-url",
            metavar="URL",
            help="S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL). "
            "Credentials come only from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an AWS profile.",
            rich_help_panel="Artifact store",
        ),
    ] = None,
    s3_region: Annotated[
        str | None,
        typer.Option(
            "--s3-region",
            metavar="REGION",
            help="S3 region (default: AWS_REGION or AWS_DEFAULT_REGION).",
            rich_help_panel="Artifact store",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    rollout_tick_seconds: Annotated[
        float,
        typer.Option(
            "--rollout-tick-seconds",
            min=0.1,
            max=3600,
            metavar="SECONDS",
            help="How often the rollout controller judges canaries whose step has lasted its interval.",
            rich_help_panel="Rollouts",
        ),
    ] = 5.0,
    notify_tick_seconds: Annotated[
        float,
        typer.Option(
            "--notify-tick-seconds",
            min=0.1,
            max=3600,
            metavar="SEC",
            help="How often notification policies are evaluated (docs/notifications.md).",
            rich_help_panel="Notifications",
        ),
    ] = 30.0,
    long_poll_recheck_seconds: Annotated[
        float,
        typer.Option(
            "--long-poll-recheck-seconds",
            min=0.1,
            metavar="SEC",
            help="How often a waiting agent long poll re-reads its revision, should a wake-up be lost "
            "(a change wakes it at once, across replicas on PostgreSQL).",
            rich_help_panel="Agents",
        ),
    ] = 2.0,
    max_actuals_mb: Annotated[
        float,
        typer.Option(
            "--max-actuals-mb",
            min=1,
            metavar="MB",
            help="Largest body of one actuals upload (the CLI splits files into requests of 10,000 rows).",
        ),
    ] = 64,
    max_package_uncompressed_mb: pkg.MaxPackageUncompressedMb = pkg.MAX_PACKAGE_UNCOMPRESSED_MB,
    max_package_ratio: pkg.MaxPackageRatio = pkg.MAX_PACKAGE_RATIO,
    max_package_members: pkg.MaxPackageMembers = pkg.MAX_PACKAGE_MEMBERS,
    header_timeout: lo.HeaderTimeout = lo.HEADER_TIMEOUT,
    max_header_bytes: lo.MaxHeaderBytes = lo.MAX_HEADER_BYTES,
    body_timeout: lo.BodyTimeout = lo.BODY_TIMEOUT,
    max_connections: lo.MaxConnections = lo.MAX_CONNECTIONS,
) -> None:
    """Run the control plane. The first start prints an admin token, once."""
    from pydantic import ValidationError

    from deckhand import extras, listener
    from deckhand.server.app import create_app
    from deckhand.server.settings import ServerSettings

    log_to_stderr(log_level)
    try:
        settings = ServerSettings(
            data_dir=data_dir,
            host=host,
            port=port,
            database_url=database_url,
            artifact_store=artifact_store,
            s3_endpoint_url=s3_endpoint_url,
            s3_region=s3_region,
            rollout_tick_seconds=rollout_tick_seconds,
            max_actuals_bytes=int(max_actuals_mb * 1024 * 1024),
            notify_tick_seconds=notify_tick_seconds,
            long_poll_recheck_seconds=long_poll_recheck_seconds,
            package_limits=pkg.package_limits(max_package_uncompressed_mb, max_package_ratio, max_package_members),
        )
    except ValidationError as exc:  # e.g. a weak DECKHAND_BOOTSTRAP_TOKEN: the message, no traceback
        fail(problems(exc), code=2)
    needed = extras.missing(extras.for_database_url(settings.database_url))
    if needed is not None:
        fail(f"--database-url (or DECKHAND_DATABASE_URL): {extras.describe(needed)}", code=2)
    needed = extras.missing(extras.for_artifact_store(settings.artifact_store))
    if needed is not None:
        fail(f"--artifact-store (or DECKHAND_ARTIFACT_STORE): {extras.describe(needed)}", code=2)
    from deckhand.server.services.artifacts import ArtifactStoreError

    try:
        application = create_app(settings)
    except ArtifactStoreError as exc:  # the message names the bucket, the endpoint and the fix
        fail(str(exc))
    except Exception as exc:  # a bad URL or an unreachable database: say so, no traceback
        from deckhand.server.db.session import mask_database_url

        fail(f"cannot open the database {mask_database_url(settings.database_url or '')}: {exc}")
    typer.echo(f"deckhand control plane on {settings.url} (API docs: {settings.url}/docs)")
    listener.serve(
        application,
        host=host,
        port=port,
        limits=lo.limits(header_timeout, max_header_bytes, body_timeout, max_connections),
        log_level=log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        abort_on_shutdown=_long_poll_path(),
    )


def _long_poll_path() -> re.Pattern[str] | None:
    """The agents' desired-state long poll: it only waits, and an agent repeats it against the
    next control plane, so a stopping control plane ends it at once (the agent sees an error
    and retries with backoff) instead of letting it hold the graceful period."""
    from fastapi.routing import APIRoute

    from deckhand.server.routers.agent import router

    routes = (r for r in router.routes if isinstance(r, APIRoute) and r.name == "desired_state")
    return next((r.path_regex for r in routes), None)

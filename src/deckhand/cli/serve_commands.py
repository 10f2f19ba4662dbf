"""`deckhand serve`: the prediction server, for one package or a models directory."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from deckhand.cli import listener_options as lo
from deckhand.cli import package_limit_options as pkg
from deckhand.cli.output import fail, problems

app = typer.Typer(add_completion=False)

# --help panels besides Options (one table each, so long names in one leave the others room)
BATCHING = "Batching"
ADMIN = "Admin listener"


class ShadowCopies(StrEnum):
    idle = "idle"
    all = "all"


@app.command("serve", epilog=pkg.ENV_HELP)
def serve(
    package: Annotated[Path | None, typer.Option(help="Serve this one package (.dhpkg).")] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(help="Serve every deployment directory here (filesystem plugin's baseDir)."),
    ] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    workers: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Worker processes (default: the number of CPUs).")
    ] = None,
    deployment_dir_prefix: Annotated[
        str, typer.Option(help="Only directories starting with this (filesystem plugin's deploymentDirPrefix).")
    ] = "",
    model_id: Annotated[str | None, typer.Option(help="Model id reported (single model).")] = None,
    monitoring: Annotated[
        str | None,
        typer.Option(help="Monitoring channel spec (default: $DECKHAND_MONITORING, else off)."),
    ] = None,
    batching: Annotated[bool, typer.Option(help="Micro-batch concurrent requests.", rich_help_panel=BATCHING)] = True,
    max_batch_rows: Annotated[
        int, typer.Option(help="A batch is scored once it holds this many rows.", rich_help_panel=BATCHING)
    ] = 1024,  # batching.DEFAULT_MAX_BATCH_ROWS (not imported: it loads numpy)
    batch_wait_ms: Annotated[
        float, typer.Option(help="Extra wait to fill a batch (0: same loop turn only).", rich_help_panel=BATCHING)
    ] = 0.0,
    shadow_copies: Annotated[
        ShadowCopies,
        typer.Option(
            help="Challengers' copies: idle = none while other requests wait for a model (never slows the "
            "champion); all = every request."
        ),
    ] = ShadowCopies.idle,
    max_body_mb: Annotated[float, typer.Option(help="Request body limit in MB.")] = 50.0,
    max_rows: Annotated[int, typer.Option(min=1, metavar="N", help="Rows per prediction request at most.")] = 1_000_000,
    admin_port: Annotated[
        int | None,
        typer.Option(
            help="Serve model uploads and deletes on this second port, with a token (off by default).",
            rich_help_panel=ADMIN,
        ),
    ] = None,
    admin_host: Annotated[
        str, typer.Option(help="Address of the admin listener.", rich_help_panel=ADMIN)
    ] = "127.0.0.1",
    admin_token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the admin listener's token (or $DECKHAND_SERVE_ADMIN_TOKEN).", rich_help_panel=ADMIN
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest package the admin listener takes, MB.", rich_help_panel=ADMIN)
    ] = 1024.0,
    header_timeout: lo.HeaderTimeout = lo.HEADER_TIMEOUT,
    max_header_bytes: lo.MaxHeaderBytes = lo.MAX_HEADER_BYTES,
    body_timeout: lo.BodyTimeout = lo.BODY_TIMEOUT,
    max_connections: lo.MaxConnections = lo.MAX_CONNECTIONS,
    max_package_uncompressed_mb: pkg.MaxPackageUncompressedMb = pkg.MAX_PACKAGE_UNCOMPRESSED_MB,
    max_package_ratio: pkg.MaxPackageRatio = pkg.MAX_PACKAGE_RATIO,
    max_package_members: pkg.MaxPackageMembers = pkg.MAX_PACKAGE_MEMBERS,
    poll_interval: Annotated[float, typer.Option(help="Models dir poll period, seconds.")] = 0.25,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """Serve predictions over HTTP (POST /predictions or /deployments/<id>/predictions)."""
    from pydantic import ValidationError

    from deckhand import extras
    from deckhand.packages import PackageError
    from deckhand.serving.admin import token_sha256
    from deckhand.serving.config import ADMIN_TOKEN_ENV, ServeConfig
    from deckhand.serving.observers import MonitoringConfigError
    from deckhand.serving.runner import run

    token = admin_token_file.read_text() if admin_token_file else os.environ.get(ADMIN_TOKEN_ENV)
    try:
        token_hash = token_sha256(token) if token else None
    except ValueError as exc:
        fail(str(exc), code=2)
    try:
        config = ServeConfig(
            package=package,
            models_dir=models_dir,
            host=host,
            port=port,
            workers=workers or os.cpu_count() or 1,
            deployment_dir_prefix=deployment_dir_prefix,
            model_id=model_id,
            monitoring=monitoring,
            batching=batching,
            max_batch_rows=max_batch_rows,
            batch_wait_ms=batch_wait_ms,
            shadow_copies=shadow_copies.value,
            max_body_bytes=int(max_body_mb * 1024 * 1024),
            max_rows=max_rows,
            admin_port=admin_port,
            admin_host=admin_host,
            admin_token_sha256=token_hash if admin_port is not None else None,
            max_upload_bytes=int(max_upload_mb * 1024 * 1024),
            limits=lo.limits(header_timeout, max_header_bytes, body_timeout, max_connections),
            package_limits=pkg.package_limits(max_package_uncompressed_mb, max_package_ratio, max_package_members),
            poll_interval_s=poll_interval,
            log_level=log_level,
        )
    except ValidationError as exc:
        fail(problems(exc), code=2)
    needed = extras.missing(extras.for_channel(config.monitoring_spec()))
    if needed is not None:  # before any worker starts
        fail(f"--monitoring (or DECKHAND_MONITORING): {extras.describe(needed)}", code=2)
    admin = f"on {admin_host}:{admin_port} (token required)" if admin_port is not None else "off"
    typer.echo(f"deckhand serve: predictions on {host}:{port}; uploads and deletes {admin}", err=True)
    try:
        run(config)
    except (PackageError, MonitoringConfigError, OSError) as exc:
        fail(str(exc))


def main() -> None:
    """`python -c 'from deckhand.cli.serve_commands import main; main()' --package ...`:
    the serve command alone (used by benchmarks; same options as `deckhand serve`)."""
    app()

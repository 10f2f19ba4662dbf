"""`deckhand serve`: the prediction server, for one package or a models directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        package: Annotated[Path | None, typer.Option(help="Serve this one package (.dhpkg).")] = None,
        models_dir: Annotated[
            Path | None,
            typer.Option(help="Serve every deployment directory here (filesystem plugin's baseDir)."),
        ] = None,
        host: Annotated[str, typer.Option()] = "127.0.0.1",
        port: Annotated[int, typer.Option()] = 8080,
        workers: Annotated[
            int | None, typer.Option(min=1, help="Worker processes (default: the number of CPUs).")
        ] = None,
        deployment_dir_prefix: Annotated[
            str, typer.Option(help="Only directories starting with this (filesystem plugin's deploymentDirPrefix).")
        ] = "",
        model_id: Annotated[str | None, typer.Option(help="Model id reported (single model).")] = None,
        monitoring: Annotated[
            str | None,
            typer.Option(help="Monitoring channel spec (default: $DECKHAND_MONITORING, else off)."),
        ] = None,
        batching: Annotated[bool, typer.Option(help="Micro-batch concurrent requests.")] = True,
        max_batch_rows: Annotated[int, typer.Option()] = 128,
        batch_wait_ms: Annotated[
            float, typer.Option(help="Extra wait to fill a batch (0: same loop turn only).")
        ] = 0.0,
        max_body_mb: Annotated[float, typer.Option(help="Request body limit in MB.")] = 50.0,
        poll_interval: Annotated[float, typer.Option(help="Models dir poll period, seconds.")] = 0.25,
        log_level: Annotated[str, typer.Option()] = "info",
    ) -> None:
        """Serve predictions over HTTP (POST /predictions or /deployments/<id>/predictions)."""
        from pydantic import ValidationError

        from deckhand.packages import PackageError
        from deckhand.serving.config import ServeConfig
        from deckhand.serving.hooks import MonitoringConfigError
        from deckhand.serving.runner import run

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
                max_body_bytes=int(max_body_mb * 1024 * 1024),
                poll_interval_s=poll_interval,
                log_level=log_level,
            )
        except ValidationError as exc:
            typer.secho(
                "error: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()),
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(code=2) from None
        try:
            run(config)
        except (PackageError, MonitoringConfigError) as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1) from None


def main() -> None:
    """`python -c 'from deckhand.cli.serve_commands import main; main()' --package ...`:
    the serve command alone (used by benchmarks; same options as `deckhand serve`)."""
    app = typer.Typer(add_completion=False)
    register(app)
    app()

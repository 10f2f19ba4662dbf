"""`deckhand agent`: follow the control plane (or a desired-state file) and make it so."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def agent(
        config: Path = typer.Option(None, "--config", "-c", help="agent.yaml: control plane URL, token, environments"),
        desired_state: Path = typer.Option(
            None, "--desired-state", help="deployments.yaml to reconcile without a control plane (re-read on change)"
        ),
        work_dir: Path = typer.Option(None, "--work-dir", help="where deployments, caches and logs live"),
        log_level: str = typer.Option("INFO", "--log-level"),
    ) -> None:
        """Run the management agent."""
        import asyncio
        import logging

        from deckhand.agent.config import AgentSettings, load_settings
        from deckhand.agent.main import build_agents, run_agents
        from deckhand.plugin.errors import ConfigError
        from deckhand.secrets import install_masking

        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
        )
        install_masking()
        if config is None and desired_state is None:
            raise typer.BadParameter("give --config agent.yaml or --desired-state deployments.yaml")
        try:
            settings = load_settings(config) if config else AgentSettings()
            if work_dir is not None:
                settings.work_dir = work_dir
            agents = build_agents(settings, desired_state)
        except (ConfigError, ValueError, OSError) as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        asyncio.run(run_agents(agents))

"""`deckhand agent`: follow the control plane (or a desired-state file) and make it so."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deckhand.cli.output import fail, log_to_stderr

app = typer.Typer()


@app.command()
def agent(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="agent.yaml: control plane URL, token, environments")
    ] = None,
    desired_state: Annotated[
        Path | None,
        typer.Option(
            "--desired-state", help="deployments.yaml to reconcile without a control plane (re-read on change)"
        ),
    ] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="where deployments, caches and logs live")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "INFO",
) -> None:
    """Run the management agent."""
    import asyncio
    import logging

    from deckhand.agent.config import AgentSettings, load_settings
    from deckhand.agent.main import build_agents, run_agents
    from deckhand.client import ControlPlaneError
    from deckhand.extras import MissingExtra
    from deckhand.plugin.errors import ConfigError
    from deckhand.secrets import install_masking

    log_to_stderr(log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per long-poll is noise
    install_masking()
    if config is None and desired_state is None:
        raise typer.BadParameter("give --config agent.yaml or --desired-state deployments.yaml")
    try:
        settings = load_settings(config) if config else AgentSettings()
        if work_dir is not None:
            settings.work_dir = work_dir
        agents = build_agents(settings, desired_state)
    except ControlPlaneError as exc:
        fail(f"control plane {settings.resolved_url()}: {_explain(exc)}", code=2)
    except (ConfigError, MissingExtra, ValueError, OSError) as exc:
        fail(str(exc), code=2)
    try:
        asyncio.run(run_agents(agents))
    except MissingExtra as exc:  # an environment from a --desired-state file, refused at set-up
        fail(str(exc), code=2)


def _explain(exc: Exception) -> str:
    """What a user should do about a control-plane refusal at start-up."""
    from deckhand.secrets import mask

    status = getattr(exc, "status_code", None)
    hint = {
        0: "not reachable; check `url:` (or DECKHAND_URL) and that the control plane is running",
        401: "the token was refused; check `token:`/`tokenFile:` (or DECKHAND_TOKEN), or create one with "
        "`deckhand tokens create NAME --role agent --env ENV`",
        403: "the token may not manage this environment; give it the environment (agent tokens are scoped "
        "to their environments) or use another token",
        404: "no such prediction environment for this token; check `environments[].id` (an id or a name), "
        "and that the agent token was created for this environment (others' look missing to it)",
    }.get(status or 0, "")
    return mask(f"{exc}" + (f" — {hint}" if hint else ""))

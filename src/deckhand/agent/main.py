"""Running the agent: one EnvironmentAgent per prediction environment, until a signal."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from deckhand.agent.config import AgentSettings
from deckhand.agent.platform_setup import require_plugin_extra
from deckhand.agent.runtime import EnvironmentAgent
from deckhand.agent.sources import ControlPlaneSource, FileSource

log = logging.getLogger("deckhand.agent")


def build_agents(settings: AgentSettings, desired_state_file: Path | None = None) -> list[EnvironmentAgent]:
    if desired_state_file is not None:
        return [EnvironmentAgent(settings, FileSource(desired_state_file))]
    url, token = settings.resolved_url(), settings.resolved_token()
    if not url:
        raise ValueError("url: the control plane URL is missing; set `url:` in the agent config or DECKHAND_URL")
    if not settings.environments:
        raise ValueError("environments: list at least one prediction environment id for the agent to manage")
    from deckhand.client import ControlPlaneClient
    from deckhand.secrets import register_secret

    register_secret(token)
    client = ControlPlaneClient(url, token, timeout=30.0)
    ids = []
    for env in settings.environments:
        record = client.get_environment(env.id)  # accepts a name too
        # Before anything starts: an environment whose plugin's extra is missing is refused.
        require_plugin_extra(env, record["id"], record.get("plugin"), record.get("platform") or "local")
        ids.append(record["id"])
    return [
        EnvironmentAgent(settings, ControlPlaneSource(client, env_id), env_settings=env, client=client)
        for env, env_id in zip(settings.environments, ids, strict=True)
    ]


async def run_agents(agents: list[EnvironmentAgent], stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        await asyncio.gather(*(agent.run(stop) for agent in agents))
    finally:
        await asyncio.gather(*(a.source.aclose() for a in agents if isinstance(a.source, ControlPlaneSource)))

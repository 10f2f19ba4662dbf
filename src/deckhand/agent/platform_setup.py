"""Setting up what one environment's agent acts through: the plugin driver (in-process, or
a subprocess through `command`), the plugin config the agent adds, the model package
cache and, on the local platform, the prediction server and tracking agent it supervises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deckhand import extras
from deckhand.agent import drivers, platforms
from deckhand.agent.artifacts import ArtifactCache
from deckhand.agent.config import AgentSettings, EnvironmentSettings
from deckhand.agent.model import EnvironmentInfo
from deckhand.plugin.constants import BosunPluginConfigConstants
from deckhand.plugin.platforms import DEFAULT_PLUGIN_BY_PLATFORM


@dataclass
class Platform:
    driver: drivers.PluginDriver
    cache: ArtifactCache
    overrides: dict[str, Any] = field(default_factory=dict)  # plugin config the agent adds
    server: platforms.PredictionServerSupervisor | None = None
    tracker: platforms.TrackingAgentSupervisor | None = None

    async def stop(self) -> None:
        try:
            if self.server is not None:
                await self.server.stop()
        finally:
            if self.tracker is not None:  # after the server, so it can send what the server spooled last
                await self.tracker.stop()


SetUp = Callable[[EnvironmentInfo], Awaitable[Platform]]


async def set_up_platform(
    settings: AgentSettings, env_settings: EnvironmentSettings, env: EnvironmentInfo, client: Any | None
) -> Platform:
    """The platform for `env`; what it started is stopped again if a later step fails."""
    work = settings.work_dir / safe_name(env.id)
    platform = Platform(
        _driver(settings, env_settings, env, work), ArtifactCache(settings.work_dir / "packages", client)
    )
    platform.overrides.update(env_settings.plugin_config)
    try:
        if env.platform == "local":
            await _start_local(platform, settings, env, work)
        if env.platform == "test" and "tmp_dir" not in env.plugin_config:
            # The test plugin keeps deployment_<id>.yaml in tmp_dir (/tmp by default), shared
            # by every environment there: each agent environment gets a folder of its own.
            platform.overrides.setdefault("tmp_dir", str(work / "test-plugin"))
        if env.platform == "docker":
            # The tracking agent the plugin runs reports to this control plane as this agent.
            platform.overrides.setdefault(BosunPluginConfigConstants.MLOPS_URL, settings.resolved_url())
            if not env_settings.command:  # a runner gets it as MLOPS_API_TOKEN instead
                platform.overrides.setdefault(BosunPluginConfigConstants.MLOPS_API_TOKEN_KEY, settings.resolved_token())
    except BaseException:
        await platform.stop()
        raise
    return platform


def _driver(
    settings: AgentSettings, env_settings: EnvironmentSettings, env: EnvironmentInfo, work: Path
) -> drivers.PluginDriver:
    if env_settings.command:
        token_env = {BosunPluginConfigConstants.MLOPS_API_TOKEN_ENV: settings.resolved_token() or ""}
        return drivers.SubprocessDriver(env_settings.command, work / "actions", token_env)
    plugin = plugin_name(env_settings, env.plugin, env.platform)
    if not plugin:
        raise RuntimeError(
            f"environment {env.id}: platform {env.platform!r} has no built-in plugin; set `command` "
            "or `plugin` for it in the agent config"
        )
    require_plugin_extra(env_settings, env.id, env.plugin, env.platform)
    return drivers.InProcessDriver(plugin, env_settings.private_config)


def plugin_name(env_settings: EnvironmentSettings, env_plugin: str | None, platform: str) -> str | None:
    """The plugin the agent runs in-process for an environment: the agent config's, else the
    environment's, else its platform's built-in."""
    return env_settings.plugin or env_plugin or DEFAULT_PLUGIN_BY_PLATFORM.get(platform)


def require_plugin_extra(env_settings: EnvironmentSettings, env_id: str, env_plugin: str | None, platform: str) -> None:
    """Refuse an environment whose in-process plugin needs an extra that is not installed
    (MissingExtra, with the pip command). A `command` plugin runs in its own process, whose
    runner checks the same when it loads the plugin."""
    if env_settings.command:
        return
    plugin = plugin_name(env_settings, env_plugin, platform)
    extras.require(extras.for_plugin(plugin), f"environment {env_id} (platform {platform}, plugin {plugin})")


async def _start_local(platform: Platform, settings: AgentSettings, env: EnvironmentInfo, work: Path) -> None:
    overrides = platform.overrides
    work = work.resolve()  # the servers it starts take absolute paths (a spool spec must be one)
    base = work / "deployments"
    port = int(env.plugin_config.get("port") or overrides.get("port") or 0) or None  # None: stable free port
    # Monitoring (docs/monitoring.md): the server spools records, a tracking agent sends them.
    url = settings.resolved_url()
    monitored = platforms.local_monitoring_enabled(overrides, {platforms.MONITORING_KEY: env.monitoring_enabled})
    spool = work / "spool" if url and monitored else None
    platform.server = platforms.PredictionServerSupervisor(
        base,
        port,
        work / "prediction-server.log",
        workers=settings.server_workers,
        env={"DECKHAND_MONITORING": f"spool:{spool}"} if spool else None,
    )
    await platform.server.start()
    overrides.update(platforms.local_plugin_config(base, platform.server.url))
    if spool and url:
        platform.tracker = platforms.TrackingAgentSupervisor(
            spool, url, settings.resolved_token(), work / "tracking-agent.log"
        )
        await platform.tracker.start()


def safe_name(value: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in value) or "env"

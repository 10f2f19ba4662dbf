"""Where the desired state comes from: the control plane (long-poll by revision) or a
YAML file (GitOps-style, re-read when it changes)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

from deckhand.agent.model import DesiredDeployment, DesiredState, EnvironmentInfo
from deckhand.plugin.errors import ConfigError, describe


class DesiredStateSource(Protocol):
    async def next_state(self, current: DesiredState | None, timeout: float) -> DesiredState: ...


def state_from_api(body: dict[str, Any]) -> DesiredState:
    env = body["environment"]
    info = EnvironmentInfo(
        id=str(env["id"]),
        name=env.get("name"),
        description=env.get("description"),
        platform=env.get("platform") or "local",
        plugin=env.get("plugin"),
        plugin_config=dict(env.get("pluginConfig") or {}),
        key_values=dict(env.get("keyValueConfig") or {}),
        monitoring_enabled=bool(env.get("monitoringEnabled")),
        created_at=env.get("createdAt"),
        created_by=env.get("createdBy"),
    )
    return DesiredState(
        int(body["revision"]), info, tuple(_deployment_from_api(d) for d in body.get("deployments", []))
    )


def _deployment_from_api(d: dict[str, Any]) -> DesiredDeployment:
    """One deployment of the desired state. A deployment whose traffic is split (a canary,
    challengers: docs/rollouts.md) runs its *mix*: `servedModelId` names it, and the control
    plane serves it for download under that id like any package; the package checksum is then
    the champion's, not the mix's, so none is checked."""
    champion = str(d.get("modelId") or d["modelPackageId"])
    served = str(d.get("servedModelId") or champion)
    return DesiredDeployment(
        id=str(d["id"]),
        model_id=served,
        active=bool(d.get("active", True)),
        name=d.get("name"),
        description=d.get("description"),
        model_format=d.get("modelFormat"),
        model_sha256=d.get("modelSha256") if served == champion else None,
        key_values=dict(d.get("keyValueConfig") or {}),
    )


class ControlPlaneSource:
    """The control plane's long poll, awaited rather than run in a thread: a stopping agent
    cancels it and the connection closes at once. `aclose()` when done with it."""

    def __init__(self, client: Any, env_id: str):
        self._poller = client.desired_state_poller()
        self._env_id = env_id

    async def next_state(self, current: DesiredState | None, timeout: float) -> DesiredState:
        revision = current.revision if current else None
        body = await self._poller.desired_state(self._env_id, revision, timeout)
        return state_from_api(body)

    async def aclose(self) -> None:
        await self._poller.aclose()


class FileSource:
    """deployments.yaml:

    environment: {id: local, platform: local, pluginConfig: {...}}
    deployments:
      - {id: d1, modelPackage: ./model.dhpkg, active: true, keyValueConfig: {}}
    """

    def __init__(self, path: Path, poll_interval: float = 0.5):
        self._path = Path(path)
        self._poll = poll_interval
        self._mtime: float | None = None

    def load(self) -> DesiredState:
        from deckhand.plugin.action_config import load_mapping_file

        # stat before reading: a write while we read then shows as a newer mtime next poll
        # (stat after, and that write would look already loaded until the file changed again)
        stat = self._path.stat()
        raw = load_mapping_file(str(self._path), what="--desired-state")
        env = raw.get("environment") or {}
        if not isinstance(env, dict) or not env.get("id"):
            raise ConfigError("environment.id", "is missing", f"add `environment: {{id: local}}` to {self._path}")
        items = raw.get("deployments") or []
        if not isinstance(items, list):
            raise ConfigError("deployments", f"expected a list, got {describe(items)}")
        deployments = []
        for index, item in enumerate(items):
            where = f"deployments[{index}]"
            if not isinstance(item, dict) or not item.get("id"):
                raise ConfigError(f"{where}.id", "is missing", "every deployment needs an id")
            package = item.get("modelPackage")
            if not package:
                raise ConfigError(f"{where}.modelPackage", "is missing", "give the path of a model package file")
            path = (self._path.parent / str(package)).resolve()
            if not path.is_file():
                raise ConfigError(f"{where}.modelPackage", f"{path} is not a file")
            if item.get("modelId"):
                model_id = item["modelId"]
            else:
                from deckhand.packages.container import file_sha256  # here: deckhand.packages imports numpy

                model_id = file_sha256(path)[:16]
            deployments.append(
                DesiredDeployment(
                    id=str(item["id"]),
                    model_id=str(model_id),
                    active=bool(item.get("active", True)),
                    name=item.get("name"),
                    description=item.get("description"),
                    key_values=dict(item.get("keyValueConfig") or {}),
                    artifact_path=str(path),
                )
            )
        info = EnvironmentInfo(
            id=str(env["id"]),
            name=env.get("name"),
            platform=env.get("platform", "local"),
            plugin=env.get("plugin"),
            plugin_config=dict(env.get("pluginConfig") or {}),
            key_values=dict(env.get("keyValueConfig") or {}),
        )
        self._mtime = stat.st_mtime
        return DesiredState(stat.st_mtime_ns, info, tuple(deployments))

    async def next_state(self, current: DesiredState | None, timeout: float) -> DesiredState:
        if current is None:
            return self.load()
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                if self._path.stat().st_mtime != self._mtime:
                    return self.load()
            except FileNotFoundError:
                pass
            await asyncio.sleep(self._poll)
        return current

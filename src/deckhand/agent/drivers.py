"""Running plugin actions: in-process for built-in plugins, or as a subprocess through a
`command` prefix that speaks the seed's protocol (action config file in, status file out),
so any compatible runner — ours or the documented one — can be driven."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import tempfile
from pathlib import Path
from typing import Any, Protocol

from deckhand.agent.model import DesiredDeployment, EnvironmentInfo, ObservedDeployment
from deckhand.fsutil import atomic_write_text
from deckhand.plugin import yamlio
from deckhand.plugin.action_config import parse_action_config
from deckhand.plugin.action_status import ActionStatus, ActionStatusInfo
from deckhand.plugin.constants import BosunPluginActions as A
from deckhand.plugin.constants import BosunPluginConfigConstants as K
from deckhand.plugin.constants import DeploymentState


class PluginDriver(Protocol):
    async def run(self, action: str, config: dict[str, Any], timeout: float) -> ActionStatusInfo: ...


def plugin_config_for(env: EnvironmentInfo, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {
        K.MLOPS_BOSUN_PRED_ENV_ID_KEY: env.id,
        K.MLOPS_BOSUN_PRED_ENV_TYPE_KEY: env.plugin or env.platform,
        K.MLOPS_BOSUN_PRED_ENV_PLATFORM_KEY: env.platform,
        K.MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING_KEY: env.monitoring_enabled,
        **env.plugin_config,
        **(overrides or {}),
    }
    return config


def deployment_info(
    desired: DesiredDeployment | None,
    observed: ObservedDeployment | None,
    dep_id: str,
    artifact: Path | None,
    replacing: bool = False,
) -> dict[str, Any]:
    info: dict[str, Any] = {"id": dep_id, "modelExecutionType": "dedicated"}
    if desired is not None:
        info.update(
            name=desired.name or dep_id,
            description=desired.description,
            modelId=desired.model_id,
            modelFormat=desired.model_format,
            keyValueConfig=dict(desired.key_values),
        )
    if artifact is not None:
        info["modelArtifact"] = str(artifact)
    if replacing and observed is not None and observed.model_id and desired is not None:
        info["modelId"] = observed.model_id
        info["newModelId"] = desired.model_id
    elif observed is not None and observed.model_id and "modelId" not in info:
        info["modelId"] = observed.model_id
    return {k: v for k, v in info.items() if v is not None}


def action_config(
    env: EnvironmentInfo,
    plugin_config: dict[str, Any],
    deployments: list[dict[str, Any]],
    deployment: dict[str, Any] | None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        K.PLUGIN_CONFIG_KEY: plugin_config,
        "peInfo": {
            "id": env.id,
            "name": env.name,
            "description": env.description,
            "createdOn": env.created_at,
            "createdBy": env.created_by,
            "deployments": deployments,
            "keyValueConfig": dict(env.key_values),
        },
    }
    if deployment is not None:
        config["deploymentInfo"] = deployment
    return config


def failing(action: str, message: str) -> ActionStatusInfo:
    state = (
        DeploymentState.ERROR if action not in (A.PLUGIN_START, A.PLUGIN_STOP, A.PE_STATUS, A.DEPLOYMENT_LIST) else None
    )
    return ActionStatusInfo(ActionStatus.ERROR, msg=message, state=state)


class InProcessDriver:
    """A built-in (or importable) plugin class called in a worker thread."""

    def __init__(self, plugin: str, private_config: str | None = None):
        from deckhand.plugin.loader import load_plugin_class

        self._cls = load_plugin_class(plugin)  # conformance is checked now, at start-up
        self._private_config = private_config

    async def run(self, action: str, config: dict[str, Any], timeout: float) -> ActionStatusInfo:
        def call() -> ActionStatusInfo:
            try:
                parsed = parse_action_config(config, action, source="agent")
                instance = self._cls(parsed.plugin_config, self._private_config, parsed.pe_info, False)
            except Exception as exc:
                return failing(action, f"setting up plugin failed: {exc}")
            return instance.invoke(action, parsed.deployment_info)

        try:
            # A thread cannot be killed: on timeout the action is reported failed and the
            # deployment stays busy until the thread returns (see EnvironmentAgent).
            return await asyncio.wait_for(asyncio.to_thread(call), timeout)
        except TimeoutError:
            return failing(action, f"{action} did not finish within {timeout:.0f} s")


class SubprocessDriver:
    """`<command> --action A --config F --status-file S` per action; killed at its timeout."""

    def __init__(self, command: str, work_dir: Path, env: dict[str, str] | None = None):
        self._argv = shlex.split(command)
        if not self._argv:
            raise ValueError("command: is empty; give the runner command line, e.g. 'bosun-plugin-runner --plugin x'")
        self._work_dir = work_dir
        self._env = env or {}

    async def run(self, action: str, config: dict[str, Any], timeout: float) -> ActionStatusInfo:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work_dir, prefix=f".{action}-") as tmp:
            config_file = Path(tmp) / "action-config.yaml"
            status_file = Path(tmp) / "status.yaml"
            # JSON is YAML: any runner reads it, and ours skips importing a YAML library.
            atomic_write_text(config_file, yamlio.dumps(config))
            argv = [*self._argv, "--action", action, "--config", str(config_file), "--status-file", str(status_file)]
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **self._env},
                start_new_session=True,  # its own process group, so a timeout kills children too
            )
            try:
                _, stderr = await asyncio.wait_for(proc.communicate(), timeout)
            except TimeoutError:
                _kill_group(proc.pid)
                await proc.wait()
                return failing(action, f"{action} did not finish within {timeout:.0f} s; plugin process killed")
            if status_file.exists():
                try:
                    values = yamlio.loads(status_file.read_text()) or {}
                    return ActionStatusInfo.from_dict(values)
                except Exception as exc:
                    return failing(action, f"plugin wrote an unreadable status file: {exc}")
            tail = (stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
            return failing(
                action, f"plugin exited with {proc.returncode} without a status file: {' | '.join(tail) or 'no output'}"
            )


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

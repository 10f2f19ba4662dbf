"""Running plugin actions: in-process for built-in plugins, or as a subprocess through a
`command` prefix that speaks bosun's documented protocol (action config file in, status file out),
so any compatible runner — ours or the documented one — can be driven."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from deckhand import yamlio
from deckhand.agent.clock import Clock, until
from deckhand.agent.model import DesiredDeployment, EnvironmentInfo, ObservedDeployment
from deckhand.fsutil import atomic_write_text
from deckhand.plugin.action_config import parse_action_config
from deckhand.plugin.action_status import ActionStatusInfo, failing_status
from deckhand.plugin.constants import BosunPluginConfigConstants, DeploymentInfoConfigConstants, PeInfoConfigConstants

STATUS_FILE = "status.yaml"  # in a subprocess action's temp dir, written by the runner


class PluginCall(Protocol):
    """One plugin action under way. `wait()` returns its result once the work has really
    ended (the thread returned, the process was reaped); it may be awaited again, and
    cancelling a wait leaves the work alone."""

    killable: bool  # a process can be killed; a thread cannot

    async def wait(self) -> ActionStatusInfo: ...

    def kill(self) -> None: ...


class PluginDriver(Protocol):
    async def start(self, action: str, config: dict[str, Any]) -> PluginCall: ...


async def run_call(call: PluginCall, action: str, timeout: float, clock: Clock) -> ActionStatusInfo | None:
    """`call`'s result if it ends within `timeout`. A process still running then is killed
    with its process group and reaped before this returns a failure. A thread cannot be
    killed: None says it still runs, and the caller must hold what the call holds (its
    deployment's slot, its parallelism permit) until `call.wait()` returns. Cancelled (the
    agent stops), a process is killed and reaped too; a thread runs on."""
    waiter = asyncio.ensure_future(call.wait())
    try:
        if await until(clock, [waiter], clock.now() + timeout):
            return waiter.result()
        if not call.killable:
            return None
        call.kill()
        await call.wait()
        return failing_status(action, f"{action} did not finish within {timeout:g} s; plugin process killed")
    except asyncio.CancelledError:
        if call.killable:
            call.kill()
            await call.wait()
        raise
    finally:
        waiter.cancel()


def plugin_config_for(env: EnvironmentInfo, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {
        BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_ID_KEY: env.id,
        BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_TYPE_KEY: env.plugin or env.platform,
        BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_PLATFORM_KEY: env.platform,
        BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING_KEY: env.monitoring_enabled,
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
        BosunPluginConfigConstants.PLUGIN_CONFIG_KEY: plugin_config,
        PeInfoConfigConstants.PE_INFO_KEY: {
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
        config[DeploymentInfoConfigConstants.DEPLOYMENT_INFO_KEY] = deployment
    return config


class InProcessDriver:
    """A built-in (or importable) plugin class, each action called in a thread of its own."""

    def __init__(self, plugin: str, private_config: str | None = None):
        from deckhand.plugin.loader import load_plugin_class

        self._cls = load_plugin_class(plugin)  # conformance is checked now, at start-up
        self._private_config = private_config

    async def start(self, action: str, config: dict[str, Any]) -> PluginCall:
        def call() -> ActionStatusInfo:
            try:
                parsed = parse_action_config(config, action, source="agent")
                instance = self._cls(parsed.plugin_config, self._private_config, parsed.pe_info, False)
            except Exception as exc:
                return failing_status(action, f"setting up plugin failed: {exc}")
            return instance.invoke(action, parsed.deployment_info)

        return ThreadCall(action, call)


class ThreadCall:
    """A plugin action in a daemon thread of its own. A thread cannot be killed, so one
    past its timeout is waited for (see run_call); its own thread rather than the shared
    executor's, so a hung plugin neither starves other work of workers nor keeps the
    agent's process from exiting."""

    killable = False

    def __init__(self, action: str, fn: Callable[[], ActionStatusInfo]):
        loop = asyncio.get_running_loop()
        self._done: asyncio.Future[ActionStatusInfo] = loop.create_future()

        def deliver(status: ActionStatusInfo) -> None:
            if not self._done.done():
                self._done.set_result(status)

        def target() -> None:
            try:
                status = fn()
            except BaseException as exc:  # invoke() catches plugin errors; this is the agent's own
                status = failing_status(action, f"{action} raised {type(exc).__name__}: {exc}")
            try:
                loop.call_soon_threadsafe(deliver, status)
            except RuntimeError:  # the loop is closed: the agent stopped, nobody waits any more
                pass

        threading.Thread(target=target, name=f"plugin-{action}", daemon=True).start()

    async def wait(self) -> ActionStatusInfo:
        return await asyncio.shield(self._done)

    def kill(self) -> None:
        """A thread cannot be killed."""


class SubprocessDriver:
    """`<command> --action A --config F --status-file S` per action, in a process group of
    its own that run_call kills at the timeout."""

    def __init__(self, command: str, work_dir: Path, env: dict[str, str] | None = None):
        self._argv = shlex.split(command)
        if not self._argv:
            raise ValueError("command: is empty; give the runner command line, e.g. 'bosun-plugin-runner --plugin x'")
        self._work_dir = work_dir
        self._env = env or {}

    async def start(self, action: str, config: dict[str, Any]) -> PluginCall:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self._work_dir, prefix=f".{action}-"))
        try:
            config_file = tmp / "action-config.yaml"
            # JSON is YAML: any runner reads it, and ours skips importing a YAML library.
            atomic_write_text(config_file, yamlio.dumps(config))
            status_file = tmp / STATUS_FILE
            argv = [*self._argv, "--action", action, "--config", str(config_file), "--status-file", str(status_file)]
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, **self._env},
                start_new_session=True,  # its own process group, so a kill reaches its children too
            )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return SubprocessCall(action, proc, tmp)


class SubprocessCall:
    """A runner process: its result is read from the status file once it has exited and
    been reaped; `kill()` sends SIGKILL to its whole process group."""

    killable = True

    def __init__(self, action: str, proc: Any, tmp: Path, kill_group: Callable[[int], None] | None = None):
        self._action = action
        self._proc = proc
        self._tmp = tmp
        self._kill_group = kill_group or _kill_group
        self._done = asyncio.ensure_future(self._reap())

    async def _reap(self) -> ActionStatusInfo:
        try:
            _, stderr = await self._proc.communicate()  # returns once the process is reaped
            status_file = self._tmp / STATUS_FILE
            if status_file.exists():
                try:
                    values = yamlio.loads(status_file.read_text()) or {}
                    return ActionStatusInfo.from_dict(values)
                except Exception as exc:
                    return failing_status(self._action, f"plugin wrote an unreadable status file: {exc}")
            tail = (stderr or b"").decode(errors="replace").strip().splitlines()[-3:]
            return failing_status(
                self._action,
                f"plugin exited with {self._proc.returncode} without a status file: {' | '.join(tail) or 'no output'}",
            )
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    async def wait(self) -> ActionStatusInfo:
        return await asyncio.shield(self._done)

    def kill(self) -> None:
        if self._proc.returncode is None:  # once reaped, its pid may belong to someone else
            self._kill_group(self._proc.pid)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

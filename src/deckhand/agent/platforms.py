"""Platforms the agent can set up itself. `local`, the embedded default, is the
filesystem plugin plus one prediction server in multi-model mode over its base dir,
started and supervised by the agent (restarted if it dies)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deckhand.fsutil import atomic_write_text
from deckhand.plugin.action_config import truthy

log = logging.getLogger("deckhand.agent.platforms")

# How long a supervised child gets to exit after SIGTERM before SIGKILL. Both exit in a
# fraction of a second: the prediction server answers requests in milliseconds (one still
# busy after this is stuck, and its clients lose the server either way), and the tracking
# agent's only work in flight is one batch post, which its next run resends and the control
# plane dedupes. Longer would only delay a stopping agent past its 2 s.
STOP_GRACE_SECONDS = 1.0


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on `port` now. SO_REUSEADDR, as the prediction server
    binds with it: connections of a stopped server in TIME_WAIT do not keep its port, so a
    restarted agent gives the server the port (and prediction URLs) it had."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SupervisedProcess:
    """A child process started with `argv()` and restarted (with backoff) whenever it exits.

    Subclasses give the command line, optionally extra environment and a readiness check."""

    name = "process"

    def __init__(self, log_file: Path, env: dict[str, str] | None = None):
        self.log_file = log_file
        self.env = env or {}
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def argv(self) -> list[str]:
        raise NotImplementedError

    async def wait_ready(self) -> None:
        """Return when the process serves; the default checks only that it did not exit at once."""

    @property
    def pid_file(self) -> Path:
        """Names the running child and its command line, so that after the agent was killed
        (SIGKILL: no clean-up ran) the next agent stops the orphan instead of doubling it."""
        return self.log_file.with_suffix(".pid")

    async def start(self) -> None:
        await self._stop_orphan()
        await self._spawn()
        self._task = asyncio.create_task(self._watch(), name=f"{self.name}-supervisor")

    async def _stop_orphan(self) -> None:
        entry = read_pid_file(self.pid_file)
        if entry is None:
            return
        pid, cmdline = entry
        if _cmdline(pid) != cmdline:
            return  # gone, or the pid now belongs to something else
        log.warning("%s pid=%s left by a previous agent; stopping it", self.name, pid)
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)  # started with start_new_session: its group is its pid
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _cmdline(pid) == cmdline:
                await asyncio.sleep(0.05)
            if _cmdline(pid) != cmdline:
                break
        self.pid_file.unlink(missing_ok=True)

    async def _spawn(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log_fh = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, **self.env} if self.env else None
        argv = self.argv()
        self._proc = await asyncio.create_subprocess_exec(
            *argv, stdout=log_fh, stderr=log_fh, start_new_session=True, env=env
        )
        log_fh.close()
        # The command line as /proc/PID/cmdline will show it (NULs as spaces), written from
        # argv rather than read from /proc, which can still show the pre-exec one this early.
        atomic_write_text(self.pid_file, f"{self._proc.pid}\n{' '.join(argv)}")
        log.info("%s pid=%s log=%s", self.name, self._proc.pid, self.log_file)
        await self.wait_ready()

    async def _watch(self) -> None:
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            log.warning("%s exited with %s; restarting (restart %d)", self.name, code, self.restarts)
            await asyncio.sleep(min(0.2 * self.restarts, 5.0))
            try:
                await self._spawn()
            except Exception as exc:
                log.error("%s restart failed: %s", self.name, exc)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def stop(self) -> None:
        self._stopping = True
        if self._proc is not None and self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(self._proc.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                log.warning(
                    "%s pid=%s still running %g s after SIGTERM; killing it", self.name, self.pid, STOP_GRACE_SECONDS
                )
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await self._proc.wait()
        if self._task is not None:
            self._task.cancel()
        self.pid_file.unlink(missing_ok=True)


def read_pid_file(path: Path) -> tuple[int, str] | None:
    """(pid, command line) from a supervisor's pid file ("<pid>\\n<argv joined by spaces>",
    written whole); None when it is missing or not of that form."""
    try:
        pid_text, cmdline = path.read_text().split("\n", 1)
        return int(pid_text), cmdline
    except (OSError, ValueError):
        return None


def _cmdline(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


class PredictionServerSupervisor(SupervisedProcess):
    """Runs `deckhand serve --models-dir DIR` and restarts it if it exits."""

    name = "prediction server"

    def __init__(
        self,
        models_dir: Path,
        port: int | None,
        log_file: Path,
        workers: int = 1,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
    ):
        super().__init__(log_file, env)
        self.models_dir = models_dir
        self.port = port
        self.host = host
        self.workers = workers
        self._http: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        await self._stop_orphan()
        if self.port is None:
            # The same port as last time when it is free: prediction URLs survive agent restarts.
            port_file = self.log_file.with_suffix(".port")
            try:
                recorded = int(port_file.read_text())
            except (OSError, ValueError):
                recorded = 0
            self.port = recorded if recorded and port_is_free(recorded, self.host) else free_port()
            atomic_write_text(port_file, str(self.port))
        await super().start()

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "deckhand.cli",
            "serve",
            "--models-dir",
            str(self.models_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]

    async def wait_ready(self, timeout: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self._proc is not None and self._proc.returncode is not None:
                    raise RuntimeError(f"prediction server exited with {self._proc.returncode}; see {self.log_file}")
                try:
                    if (await client.get(f"{self.url}/ping", timeout=1.0)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(
            f"prediction server at {self.url} not answering /ping after {timeout:.0f} s; see {self.log_file}"
        )

    async def wait_model_loaded(self, deployment_id: str, model_id: str, timeout: float = 15.0) -> str | None:
        """Wait until the server serves `model_id` for the deployment; None, or why not."""

        def serving(response: Any) -> str | None:
            info = response.json() if response.status_code == 200 else {}
            if info.get("modelId") == model_id:
                return None
            if response.status_code != 200:
                return f"/info answered {response.status_code}"
            return f"serving {info.get('modelId')}, state {info.get('state')}: {info.get('lastError')}"

        last = await self._poll_info(deployment_id, serving, timeout)
        return last and f"prediction server did not load model {model_id} within {timeout:.0f} s ({last})"

    async def wait_model_unloaded(self, deployment_id: str, timeout: float = 15.0) -> str | None:
        """Wait until the server no longer serves the deployment (its /info is 404)."""

        def gone(response: Any) -> str | None:
            return None if response.status_code == 404 else f"/info answered {response.status_code}"

        last = await self._poll_info(deployment_id, gone, timeout)
        return last and f"prediction server still serves deployment {deployment_id} after {timeout:.0f} s ({last})"

    async def _poll_info(self, deployment_id: str, check: Callable[[Any], str | None], timeout: float) -> str | None:
        """Poll the deployment's /info until `check` says done (None); else its last reason.
        Fast at first, then every 0.25 s: a thousand actions waiting at once must not flood
        the server they wait for."""
        import httpx

        deadline = time.monotonic() + timeout
        last: str | None = "no answer yet"
        delay = 0.02
        client = self._client()
        while time.monotonic() < deadline:
            try:
                last = check(await client.get(f"{self.url}/deployments/{deployment_id}/info", timeout=2.0))
                if last is None:
                    return None
            except httpx.HTTPError as exc:
                last = str(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)
        return last

    def _client(self) -> Any:
        """One HTTP client for every wait: making one per call builds an SSL context each
        time (tens of ms of CPU), which was most of the agent's work with 1,000 deployments."""
        import httpx

        if self._http is None:
            self._http = httpx.AsyncClient(limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))
        return self._http

    async def stop(self) -> None:
        await super().stop()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


class TrackingAgentSupervisor(SupervisedProcess):
    """Runs `deckhand tracking-agent` on the local prediction server's spool (token in the env)."""

    name = "tracking agent"

    def __init__(self, spool_dir: Path, server_url: str, token: str | None, log_file: Path):
        super().__init__(log_file, {"DECKHAND_TOKEN": token or ""})
        self.spool_dir = spool_dir
        self.server_url = server_url

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "deckhand.cli",
            "tracking-agent",
            "--channel",
            f"spool:{self.spool_dir}",
            "--server",
            self.server_url,
            "--flush-interval",
            "1.0",
        ]


MONITORING_KEY = "monitoring"  # plugin config key of a local environment; default on


def local_monitoring_enabled(*configs: dict[str, Any]) -> bool:
    """`monitoring` from the first config that sets it (agent.yaml pluginConfig, then the
    environment's plugin config), read by `truthy`; the local platform monitors when no
    config sets it."""
    for config in configs:
        value = config.get(MONITORING_KEY)
        if value is not None:
            return truthy(value)
    return True


def local_plugin_config(base_dir: Path, server_url: str) -> dict[str, Any]:
    """The filesystem plugin's keys for the local platform (plugin_config_for adds the
    monitoring flag, the last key it requires)."""
    from deckhand.plugins.filesystem import config

    return {
        config.BASE_DIR: str(base_dir),
        config.DIR_PREFIX: "",
        config.INFO_FILE: config.EXAMPLE[config.INFO_FILE],
        config.PREDICTION_BASE_URL: server_url,
    }

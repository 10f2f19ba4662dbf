"""Platforms the agent can set up itself. `local`, the embedded default, is the
filesystem plugin plus one prediction server in multi-model mode over its base dir,
started and supervised by the agent (restarted if it dies)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("deckhand.agent.platforms")

# Platform -> plugin used when the environment names none.
DEFAULT_PLUGINS = {"local": "filesystem", "filesystem": "filesystem", "test": "test"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PredictionServerSupervisor:
    """Runs `deckhand serve --models-dir DIR` and restarts it if it exits."""

    def __init__(self, models_dir: Path, port: int, log_file: Path, workers: int = 1, host: str = "127.0.0.1"):
        self.models_dir = models_dir
        self.port = port
        self.host = host
        self.workers = workers
        self.log_file = log_file
        self.url = f"http://{host}:{port}"
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        await self._spawn()
        self._task = asyncio.create_task(self._watch(), name="prediction-server-supervisor")

    async def _spawn(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log_fh = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        argv = [
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
        self._proc = await asyncio.create_subprocess_exec(*argv, stdout=log_fh, stderr=log_fh, start_new_session=True)
        log_fh.close()
        log.info("prediction server pid=%s url=%s models_dir=%s", self._proc.pid, self.url, self.models_dir)
        await self.wait_ready()

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

    async def _watch(self) -> None:
        while not self._stopping:
            assert self._proc is not None
            code = await self._proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            log.warning("prediction server exited with %s; restarting (restart %d)", code, self.restarts)
            await asyncio.sleep(min(0.2 * self.restarts, 5.0))
            try:
                await self._spawn()
            except Exception as exc:
                log.error("prediction server restart failed: %s", exc)

    async def wait_model_loaded(self, deployment_id: str, model_id: str, timeout: float = 15.0) -> str | None:
        """Wait until the server serves `model_id` for the deployment; None, or why not."""
        import httpx

        deadline = time.monotonic() + timeout
        last = "not seen yet"
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                try:
                    response = await client.get(f"{self.url}/deployments/{deployment_id}/info", timeout=2.0)
                    if response.status_code == 200:
                        info = response.json()
                        if info.get("modelId") == model_id:
                            return None
                        last = f"serving {info.get('modelId')}, state {info.get('state')}: {info.get('lastError')}"
                except httpx.HTTPError as exc:
                    last = str(exc)
                await asyncio.sleep(0.05)
        return f"prediction server did not load model {model_id} within {timeout:.0f} s ({last})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def stop(self) -> None:
        self._stopping = True
        if self._proc is not None and self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, 15)
            except ProcessLookupError:
                pass
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                os.killpg(self._proc.pid, 9)
                await self._proc.wait()
        if self._task is not None:
            self._task.cancel()


def local_plugin_config(base_dir: Path, server_url: str) -> dict[str, Any]:
    return {
        "baseDir": str(base_dir),
        "deploymentDirPrefix": "",
        "deploymentPredictionBaseUrl": server_url,
    }

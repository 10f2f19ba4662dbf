"""`deckhand quickstart`: the embedded default, end to end, in one command.

Starts a control plane (SQLite in a temp dir), trains and packages a small model, creates
a `local` prediction environment, runs an agent for it (filesystem plugin + a supervised
prediction server), deploys the model, waits until it is ready and sends a prediction.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from deckhand.agent.config import AgentSettings, EnvironmentSettings
from deckhand.agent.platforms import free_port
from deckhand.agent.runtime import EnvironmentAgent
from deckhand.agent.sources import ControlPlaneSource

Say = Callable[[str], None]

# Backstops for a stuck component at shutdown; each stops in a fraction of a second
# otherwise. The agent bounds its own stop (plugin threads: shutdownGraceSeconds; each
# supervised process: deckhand.agent.platforms.STOP_GRACE_SECONDS before SIGKILL); the
# control plane's graceful shutdown takes at most 1 s (deckhand.cli.server_commands).
AGENT_STOP_SECONDS = 15.0
CONTROL_PLANE_STOP_SECONDS = 3.0


@dataclass
class QuickstartResult:
    api_url: str
    admin_token: str
    prediction_url: str
    prediction: dict
    data_dir: Path
    seconds_to_first_prediction: float


def start_control_plane(data_dir: Path, token: str, port: int) -> subprocess.Popen:
    log = open(data_dir / "control-plane.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deckhand.cli",
            "server",
            "--data-dir",
            str(data_dir / "control-plane"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            # a canary tried on the quickstart (README) is judged within a second of its step's end
            "--rollout-tick-seconds",
            "1",
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "DECKHAND_BOOTSTRAP_TOKEN": token},
        start_new_session=True,
    )
    log.close()
    return proc


def stop_control_plane(proc: subprocess.Popen, grace: float = CONTROL_PLANE_STOP_SECONDS) -> None:
    """SIGTERM, then SIGKILL after `grace`; reaped either way."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"control plane exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {log}")


ENV_FILE = "deckhand.env"


def write_env_file(path: Path, result: QuickstartResult) -> None:
    """`DECKHAND_URL`, `DECKHAND_TOKEN` and `DECKHAND_PREDICTION_URL` as shell exports, for the
    CLI in another terminal (`. deckhand.env`). Written once everything is ready, so its
    appearance says so; 0600, as it holds the admin token; removed when the quickstart stops."""
    from deckhand.fsutil import atomic_write_text

    lines = [
        f"export DECKHAND_URL={shlex.quote(result.api_url)}",
        f"export DECKHAND_TOKEN={shlex.quote(result.admin_token)}",
        f"export DECKHAND_PREDICTION_URL={shlex.quote(result.prediction_url)}",
    ]
    atomic_write_text(path, "\n".join(lines) + "\n", mode=0o600)


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived before the demo finished; what it started is stopped."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} before the demo finished")
        self.signum = signum


class _Signals:
    """SIGINT and SIGTERM, from the first line on: the first one sets `stop` (and, while the
    demo still runs, cancels it); later ones are ignored, so the clean-up is never cut short
    and no child process is left behind."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.received: int | None = None
        self.demo: asyncio.Task[object] | None = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._handle, sig)

    def _handle(self, signum: int) -> None:
        if self.received is not None:
            return
        self.received = signum
        self.stop.set()
        if self.demo is not None:
            self.demo.cancel()

    def demo_done(self) -> None:
        self.demo = None


async def run_quickstart(data_dir: Path, say: Say, keep_running: bool) -> QuickstartResult:
    started = time.monotonic()
    from deckhand.client import ControlPlaneClient
    from deckhand.packages.demo import sample_rows, train_demo_package

    stop = asyncio.Event()
    signals = _Signals(stop)
    token = "dh_" + secrets.token_urlsafe(24)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    say(f"starting the control plane at {api_url} (data in {data_dir})")
    server = start_control_plane(data_dir, token, port)
    agent_task: asyncio.Task | None = None
    source: ControlPlaneSource | None = None
    try:
        package = data_dir / "demo-iris.dhpkg"
        say("training a small model on scikit-learn's bundled iris data and packaging it")
        manifest = await asyncio.to_thread(train_demo_package, package)
        await asyncio.to_thread(wait_http, f"{api_url}/healthz", server, 30, data_dir / "control-plane.log")
        client = ControlPlaneClient(api_url, token)
        env = client.create_environment(
            name="quickstart-local",
            platform="local",
            description="filesystem plugin + local prediction server",
            monitoringEnabled=True,  # as the local platform is anyway; canary gates read it
        )
        uploaded = client.upload_package(package)
        say(f"uploaded model package {uploaded['id']} ({manifest.format}, {manifest.target_type})")

        settings = AgentSettings(
            url=api_url, token=token, work_dir=data_dir / "agent", long_poll_timeout=10, resync_interval=10
        )
        source = ControlPlaneSource(client, env["id"])
        agent = EnvironmentAgent(
            settings,
            source,
            env_settings=EnvironmentSettings(id=env["id"]),
            client=client,
        )
        agent_task = asyncio.create_task(agent.run(stop))
        deployment = client.create_deployment(name="iris", environment_id=env["id"], model_package_id=uploaded["id"])
        say(f"deploying as deployment {deployment['id']}; waiting until it is ready")
        url = await _wait_ready(client, deployment["id"], agent_task, timeout=60)
        rows = sample_rows(2)
        async with httpx.AsyncClient() as http:
            response = await http.post(url, json=rows, timeout=10)
        response.raise_for_status()
        prediction = response.json()
        elapsed = time.monotonic() - started
        result = QuickstartResult(api_url, token, url, prediction, data_dir, elapsed)
        _print_summary(result, rows, say)
        await _show_service_health(client, deployment["id"], api_url, say)
        signals.demo_done()
        if keep_running:
            write_env_file(data_dir / ENV_FILE, result)
            say(f"the CLI's settings: . {data_dir / ENV_FILE}")
            say("running; press Ctrl-C to stop")
            await stop.wait()
        return result
    except asyncio.CancelledError:
        if signals.received is None:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]  # our own cancel, turned into Interrupted
        raise Interrupted(signals.received) from None
    finally:
        # In order: the agent (its prediction server, then its tracking agent, which sends
        # what is left to the control plane), then the control plane. Each bound is for a
        # stuck component only; all of it takes well under a second.
        (data_dir / ENV_FILE).unlink(missing_ok=True)  # its token and URLs die with this run
        stop.set()
        if agent_task is not None:
            try:
                await asyncio.wait_for(agent_task, AGENT_STOP_SECONDS)
            except Exception:
                agent_task.cancel()
        if source is not None:
            await source.aclose()
        await asyncio.to_thread(stop_control_plane, server)


async def _wait_ready(client, deployment_id: str, agent_task: asyncio.Task, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if agent_task.done():
            agent_task.result()  # raises the agent's error
            raise RuntimeError("the agent stopped before the deployment was ready")
        observed = (await asyncio.to_thread(client.get_deployment, deployment_id)).get("observed") or {}
        last = observed
        if observed.get("state") == "ready" and observed.get("predictionUrl"):
            return observed["predictionUrl"]
        if observed.get("state") == "errored":
            raise RuntimeError(f"deployment errored: {observed.get('message')}")
        await asyncio.sleep(0.1)
    raise RuntimeError(f"deployment not ready after {timeout:.0f} s; last observed state: {last}")


async def _show_service_health(client, deployment_id: str, api_url: str, say: Say, timeout: float = 20.0) -> None:
    """Wait until monitoring (prediction server -> spool -> tracking agent) counted the demo request."""
    deadline = time.monotonic() + timeout
    requests = 0
    while time.monotonic() < deadline:
        try:
            health = await asyncio.to_thread(client.service_health, deployment_id)
            requests = health["totals"]["requests"]
        except Exception:  # not there yet
            requests = 0
        if requests:
            break
        await asyncio.sleep(0.25)
    say(f"service health  {requests} request(s) recorded by monitoring")
    say(f"  {api_url}/api/v1/deployments/{deployment_id}/monitoring/service-health")


def _print_summary(result: QuickstartResult, rows: list[dict], say: Say) -> None:
    body = json.dumps(rows[:1])
    say("")
    say(f"prediction      {json.dumps(result.prediction['data'][0])}")
    say(f"prediction URL  {result.prediction_url}")
    say(f"API             {result.api_url}  (OpenAPI: {result.api_url}/docs)")
    say(f"web UI          {result.api_url}/ui  (log in with the admin token below)")
    say(f"admin token     {result.admin_token}")
    say(f"first prediction after {result.seconds_to_first_prediction:.1f} s")
    say("try:")
    say(f"  curl -s -X POST {result.prediction_url} -H 'Content-Type: application/json' -d {shlex.quote(body)}")


def main(exit_after_demo: bool, data_dir: Path | None, say: Say) -> QuickstartResult:
    directory = data_dir or Path(tempfile.mkdtemp(prefix="deckhand-quickstart-"))
    directory.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run_quickstart(directory, say, keep_running=not exit_after_demo))

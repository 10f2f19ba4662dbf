"""`deckhand server`, `deckhand agent` and `deckhand quickstart` as real processes: each stops
within 2 s of SIGTERM or SIGINT (Ctrl-C) and leaves no process behind (the agent's prediction
server and tracking agent, the quickstart's control plane). The measured times are printed."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deckhand.agent.testing import AgentProcess, processes_mentioning, write_agent_config
from deckhand.client import ControlPlaneClient, ControlPlaneError
from deckhand.packages.demo import sample_rows
from deckhand.server.testing import ServerProcess
from deckhand.testing import DECKHAND, ChildProcess, command_line, descendants, running, wait_until

pytestmark = pytest.mark.slow

ADMIN = "dh_shutdown-test-admin-token-0123456789"
LIMIT = 2.0  # seconds from the signal to the exit


def stop_and_measure(proc: ChildProcess, sig: signal.Signals, what: str, expect: list[str]) -> float:
    """Send `sig`; the seconds until `proc` exited. Asserts the limit, that the children named
    by `expect` (command-line fragments) were running before, and that none survives."""
    assert proc.process is not None and proc.alive(), f"{what} is not running:\n{proc.output()[-3000:]}"
    tree = {pid: command_line(pid) for pid in descendants(proc.pid)}
    for fragment in expect:
        assert any(fragment in cmd for cmd in tree.values()), f"{what}: no child running {fragment!r}: {tree}"
    started = time.monotonic()
    proc.process.send_signal(sig)
    try:
        proc.process.wait(30)
    finally:
        seconds = time.monotonic() - started
        print(f"{what}: exited {seconds:.2f} s after {sig.name} (code {proc.process.returncode})")
    survivors = [f"{pid}: {cmd}" for pid, cmd in tree.items() if running(pid) and command_line(pid) == cmd]
    assert not survivors, f"{what} left processes behind after {sig.name}: {survivors}"
    assert seconds < LIMIT, f"{what} took {seconds:.2f} s to stop after {sig.name}:\n{proc.output()[-3000:]}"
    return seconds


@pytest.fixture
def reap(tmp_path: Path) -> Iterator[list[ChildProcess]]:
    """What a test started is killed at the end, and whatever it left behind (every process
    with the test's temp dir in its command line), so a failing test leaves nothing either."""
    started: list[ChildProcess] = []
    yield started
    for proc in started:
        proc.kill()
    for pid in processes_mentioning(str(tmp_path)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_control_plane_stops_promptly_with_a_long_poll_in_flight(tmp_path: Path, sig: signal.Signals) -> None:
    """An agent's long poll is waiting (up to 30 s) when the signal arrives; another one was
    abandoned by its client before. Neither may hold the control plane up."""
    server = ServerProcess(tmp_path / "cp", bootstrap_token=ADMIN).start()
    try:
        client = ControlPlaneClient(server.url, ADMIN)
        env = client.create_environment(name="shutdown", platform="local")
        revision = client.desired_state(env["id"])["revision"]
        try:  # abandoned: the client gives up, the handler would wait its 30 s
            ControlPlaneClient(server.url, ADMIN, timeout=0.2).desired_state(env["id"], revision, timeout=30)
        except ControlPlaneError:
            pass

        def long_poll() -> None:
            try:
                client.desired_state(env["id"], revision, timeout=30)
            except ControlPlaneError:
                pass  # the control plane went away: what an agent retries

        threading.Thread(target=long_poll, daemon=True).start()
        # the long poll reaching the server (another process) shows no outside sign: a margin
        time.sleep(0.5)
        stop_and_measure(server, sig, "deckhand server", [])
    finally:
        server.stop()


def test_agent_stops_promptly_and_stops_its_processes(tmp_path: Path, demo_package: Path, reap: list) -> None:
    """A local environment with a ready deployment: the agent is in its long poll and
    supervises a prediction server and a tracking agent."""
    with ServerProcess(tmp_path / "cp", bootstrap_token=ADMIN) as server:
        client = ControlPlaneClient(server.url, ADMIN)
        env = client.create_environment(name="shutdown", platform="local")
        package = client.upload_package(demo_package)
        dep = client.create_deployment("iris", env["id"], package["id"])
        work = tmp_path / "agent"
        config = write_agent_config(
            tmp_path / "agent.yaml",
            url=server.url,
            token=ADMIN,
            work_dir=work,
            environments=[{"id": env["id"]}],
            longPollSeconds=30,
        )
        agent = AgentProcess(config, work).start()
        reap.append(agent)

        def answering() -> bool:
            seen = client.get_deployment(dep["id"]).get("observed") or {}
            url = seen.get("predictionUrl") if seen.get("state") == "ready" else None
            return bool(url) and httpx.post(url, json=sample_rows(1), timeout=5).status_code == 200

        wait_until(answering, 60, what="deployment answering")
        # not an event: the agent is stopped while idle, half a second into its next long poll
        time.sleep(0.5)
        stop_and_measure(agent, signal.SIGTERM, "deckhand agent", ["deckhand.cli serve", "tracking-agent"])


class Quickstart(ChildProcess):
    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir / "quickstart.out")
        self.data_dir = data_dir

    def argv(self) -> list[str]:
        return [*DECKHAND, "quickstart", "--data-dir", str(self.data_dir)]


def test_quickstart_stops_on_ctrl_c_with_everything_it_started(tmp_path: Path, reap: list) -> None:
    quickstart = Quickstart(tmp_path / "qs").start()
    reap.append(quickstart)

    def up() -> str | None:
        if not quickstart.alive():
            raise AssertionError(f"quickstart exited:\n{quickstart.output()[-3000:]}")
        out = quickstart.output()
        found = re.search(r"prediction URL +(\S+)", out)
        return found.group(1) if found and "press Ctrl-C to stop" in out else None

    url = wait_until(up, 120, what="quickstart running")
    assert httpx.post(url, json=sample_rows(1), timeout=5).status_code == 200
    stop_and_measure(quickstart, signal.SIGINT, "deckhand quickstart", ["deckhand.cli server", "deckhand.cli serve"])
    assert quickstart.process is not None and quickstart.process.returncode == 0


def test_quickstart_stopped_before_the_demo_finished_leaves_nothing(tmp_path: Path, reap: list) -> None:
    """SIGTERM while the agent deploys: everything started so far is stopped, exit 128 + 15."""
    quickstart = Quickstart(tmp_path / "qs").start()
    reap.append(quickstart)
    wait_until(lambda: "waiting until it is ready" in quickstart.output(), 120, what="quickstart deploying")
    stop_and_measure(quickstart, signal.SIGTERM, "deckhand quickstart (deploying)", ["deckhand.cli server"])
    assert quickstart.process is not None and quickstart.process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM before the demo finished" in quickstart.output()

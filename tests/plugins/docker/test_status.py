"""How the plugin reads a deployment's state from its containers (our logic, on stand-in
container objects shaped like the SDK's; the real engine is in the other tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from deckhand.plugins.docker import names
from deckhand.plugins.docker.plugin import DockerPlugin


@dataclass
class FakeContainer:
    name: str
    model: str
    generation: int
    status: str = "running"
    health: str | None = "healthy"
    exit_code: int = 0
    log: bytes = b""
    labels: dict[str, str] = field(init=False)
    attrs: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.labels = {names.LABEL_MODEL: self.model, names.LABEL_GENERATION: str(self.generation)}
        state: dict[str, Any] = {"Status": self.status, "ExitCode": self.exit_code}
        if self.health:
            state["Health"] = {"Status": self.health, "Log": [{"Output": "connection refused"}]}
        self.attrs = {"State": state}

    def logs(self, tail: int) -> bytes:
        return self.log


@pytest.fixture
def plugin() -> DockerPlugin:
    return DockerPlugin({"MLOPS_BOSUN_PRED_ENV_ID": "pe", "dockerHost": "unix:///nonexistent.sock"})


def test_no_container_is_stopped(plugin) -> None:
    status = plugin._status_of("d1", [])
    assert (status.status, status.state) == ("passing", "stopped")


def test_healthy_container_is_ready_with_its_model(plugin) -> None:
    status = plugin._status_of("d1", [FakeContainer("c1", "m1", 1)])
    assert status.state == "ready"
    assert status.data == {"predictionUrl": "http://localhost:81/deployments/d1/predictions", "currentModelId": "m1"}


def test_mid_replacement_the_serving_one_counts(plugin) -> None:
    old = FakeContainer("old", "m1", 1)
    new = FakeContainer("new", "m2", 2, health="starting")
    status = plugin._status_of("d1", [new, old])
    assert status.state == "ready" and status.data["currentModelId"] == "m1"
    assert "also present: new" in status.msg
    # Once both are healthy, the newer generation (the one Traefik routes to) is current.
    both = plugin._status_of("d1", [old, FakeContainer("new", "m2", 2)])
    assert both.data["currentModelId"] == "m2"


def test_starting_is_launching(plugin) -> None:
    status = plugin._status_of("d1", [FakeContainer("c1", "m1", 1, health="starting")])
    assert (status.status, status.state) == ("passing", "launching")


def test_exited_container_is_errored_with_its_reason(plugin) -> None:
    dead = FakeContainer("c1", "m1", 1, status="exited", health=None, exit_code=137, log=b"line one\nkilled\n")
    status = plugin._status_of("d1", [dead])
    assert (status.status, status.state) == ("failing", "errored")
    assert "c1 is exited (exit code 137)" in status.msg and "line one | killed" in status.msg
    assert status.data["currentModelId"] == "m1"


def test_unhealthy_container_says_what_the_check_saw(plugin) -> None:
    status = plugin._status_of("d1", [FakeContainer("c1", "m1", 1, health="unhealthy")])
    assert status.state == "errored" and "unhealthy (health check: connection refused)" in status.msg

"""Monitoring on the docker platform: prediction servers report to RabbitMQ, the tracking
agent container reads it and sends to the control plane, whose service health counts the
requests. The control plane listens on the engine's bridge address so containers reach it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deckhand.agent.testing import AgentProcess, write_agent_config
from deckhand.client import ControlPlaneClient
from deckhand.plugins.docker import names

from .conftest import predict, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.rabbitmq, pytest.mark.slow, pytest.mark.timeout(900)]

ADMIN = "dh_docker-monitoring-admin-token-0123456789"
BRIDGE_IP = os.environ.get("DECKHAND_DOCKER_BRIDGE_CIDR", "172.31.250.1/24").split("/")[0]


@pytest.fixture
def bridge_control_plane(tmp_path: Path, engine_host) -> Iterator[str]:
    from deckhand.server.settings import ServerSettings
    from deckhand.server.testing import ThreadedServer
    from deckhand.testing import free_port

    settings = ServerSettings(
        data_dir=tmp_path / "cp", host=BRIDGE_IP, port=free_port(BRIDGE_IP), bootstrap_token=ADMIN
    )
    server = ThreadedServer(settings).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_monitoring_reaches_the_control_plane_through_rabbitmq(
    tmp_path: Path, bridge_control_plane: str, denv, packages, build_image
) -> None:
    build_image("rabbitmq", allow_existing=True)
    build_image("tracking-agent", allow_existing=True)
    admin = ControlPlaneClient(bridge_control_plane, ADMIN)
    config = {k: v for k, v in denv.config().items() if k != "MLOPS_BOSUN_PRED_ENV_ID"}
    env = admin.create_environment(name=denv.env_id, platform="docker", pluginConfig=config, monitoringEnabled=True)
    denv.labelled_id = env["id"]
    token = admin.create_token(f"agent-{env['id']}", "agent", [env["id"]])["token"]
    agent_config = write_agent_config(
        tmp_path / "agent.yaml", url=bridge_control_plane, token=token, work_dir=tmp_path / "agent",
        environments=[{"id": env["id"]}],
    )  # fmt: skip
    package = admin.upload_package(packages["a"])
    dep = admin.create_deployment("iris", env["id"], package["id"])
    with AgentProcess(agent_config, tmp_path / "agent") as agent:
        url = wait_until(
            lambda: (
                (s := admin.get_deployment(dep["id"]).get("observed") or {}).get("state") == "ready"
                and s.get("predictionUrl")
            ),
            180,
            0.5,
            "deployment ready",
        )
        roles = {c.labels[names.LABEL_ROLE] for c in denv.containers()}
        assert {"proxy", "rabbitmq", "tracking-agent", "model"} <= roles, roles
        sent = 40
        began = time.monotonic()
        for _ in range(sent):
            assert predict(url.replace("localhost", "127.0.0.1"))[0] == 200

        def counted() -> int:
            totals = admin.service_health(dep["id"]).get("totals") or {}
            return totals.get("requests", 0) >= sent and totals["requests"]

        try:
            total = wait_until(counted, 180, 1.0, "requests counted by the control plane")
        except AssertionError:
            for container in denv.containers():
                print(container.name, container.status, container.logs(tail=15).decode(errors="replace"))
            print(agent.output()[-3000:])
            raise
        print(f"\nmonitoring: {total} requests counted {time.monotonic() - began:.1f} s after the first was sent")
        assert total == sent
        admin.delete_deployment(dep["id"])
        wait_until(lambda: not [c for c in denv.containers() if c.labels[names.LABEL_ROLE] == "model"], 60)
    assert denv.containers() == [] and denv.networks() == []

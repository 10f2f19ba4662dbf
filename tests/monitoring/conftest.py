"""Fixtures for the monitoring tests: a control plane app, a demo deployment, RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deckhand.server.app import create_app
from deckhand.server.settings import ServerSettings

ADMIN_TOKEN = "dh_monitoring-admin-token-0123456789"


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    return ServerSettings(data_dir=tmp_path / "data", bootstrap_token=ADMIN_TOKEN)


@pytest.fixture
def api(settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


def make_deployment(api: TestClient, package_path: Path, env_name: str = "mon-env", name: str = "iris") -> dict:
    package = api.post(
        "/api/v1/model-packages",
        content=package_path.read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert package.status_code == 201, package.text
    env = api.post("/api/v1/environments", json={"name": env_name, "platform": "test"})
    assert env.status_code == 201, env.text
    dep = api.post(
        "/api/v1/deployments",
        json={"name": name, "environmentId": env.json()["id"], "modelPackageId": package.json()["id"]},
    )
    assert dep.status_code == 201, dep.text
    return dep.json()


@pytest.fixture
def deployment(api: TestClient, demo_package: Path) -> dict:
    return make_deployment(api, demo_package)


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real RabbitMQ (Debian's rabbitmq-server) on loopback, for the whole session."""
    from deckhand.monitoring.testing import RabbitMQBroker, rabbitmq_available

    why = rabbitmq_available()
    if why:
        pytest.skip(f"{why}; run ./scripts/test (or scripts/setup/60-rabbitmq.sh) to make these run")
    broker = RabbitMQBroker(tmp_path_factory.mktemp("rabbitmq"))
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[object]:
    """`deckhand server` as a real process (restartable: same data dir and port)."""
    from deckhand.server.testing import ServerProcess

    server = ServerProcess(tmp_path / "cp-data", bootstrap_token=ADMIN_TOKEN, log_path=tmp_path / "cp.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cp_deployment(control_plane, demo_package: Path) -> dict:  # type: ignore[no-untyped-def]
    from deckhand.client.control_plane import ControlPlaneClient

    with ControlPlaneClient(control_plane.url, ADMIN_TOKEN) as client:
        package = client.upload_package(demo_package)
        env = client.create_environment(name="faults", platform="test")
        return client.create_deployment(name="iris", environment_id=env["id"], model_package_id=package["id"])


def wait_for_requests(url: str, deployment_id: str, expected: int, timeout: float = 120.0) -> dict:
    """Poll service health until the total reaches `expected`; the totals (what was counted
    if it never did: the caller's assertion shows them)."""
    import time

    from deckhand.client.control_plane import ControlPlaneClient
    from deckhand.client.errors import ControlPlaneError
    from deckhand.testing import wait_until

    with ControlPlaneClient(url, ADMIN_TOKEN) as client:

        def totals() -> dict:
            try:
                return client.service_health(deployment_id)["totals"]
            except ControlPlaneError:
                return {}

        try:
            wait_until(lambda: totals().get("requests", 0) >= expected, timeout, 0.25, what=f"{expected} requests")
        except AssertionError:
            return totals()
        # Not waiting for an event: anything arriving in this second would be a double count.
        time.sleep(1.0)
        return client.service_health(deployment_id)["totals"]

"""`ControlPlaneClient` against a real control plane on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deckhand.client import ControlPlaneClient, ControlPlaneError
from deckhand.server.testing import ThreadedServer
from deckhand.testing import free_port

ADMIN = "dh_client-admin-token-0123456789abcdef"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer.on(tmp_path / "data", ADMIN) as running:
        yield running


@pytest.fixture
def client(server: ThreadedServer) -> Iterator[ControlPlaneClient]:
    with ControlPlaneClient(server.url, ADMIN, timeout=10) as c:
        yield c


def test_upload_reports_progress_and_download_round_trips(
    client: ControlPlaneClient, demo_package: Path, tmp_path: Path
) -> None:
    seen: list[tuple[int, int]] = []
    package = client.upload_package(demo_package, progress=lambda done, total: seen.append((done, total)))
    size = demo_package.stat().st_size
    assert package["size"] == size and seen[-1] == (size, size)
    assert client.get_package(package["id"])["sha256"] == package["sha256"]
    assert [p["id"] for p in client.list_packages()] == [package["id"]]

    into_dir = client.download_package(package["id"], tmp_path)
    assert into_dir == tmp_path / f"{package['id']}.dhpkg"
    named = client.download_package(package["id"], tmp_path / "sub" / "copy.dhpkg")
    assert named.read_bytes() == into_dir.read_bytes() == demo_package.read_bytes()


def test_a_damaged_download_is_refused_and_leaves_nothing(
    client: ControlPlaneClient, server: ThreadedServer, demo_package: Path, tmp_path: Path
) -> None:
    package = client.upload_package(demo_package)
    stored = server.settings.artifacts_dir / f"{package['id']}.pkg"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte on the server's disk
    stored.write_bytes(bytes(data))
    dest = tmp_path / "out" / "copy.dhpkg"
    with pytest.raises(ControlPlaneError, match="damaged"):
        client.download_package(package["id"], dest)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temp file left behind


def test_errors_carry_status_and_server_message(client: ControlPlaneClient) -> None:
    with pytest.raises(ControlPlaneError) as err:
        client.get_environment("nowhere")
    assert err.value.status_code == 404
    assert "nowhere" in err.value.message
    with pytest.raises(ControlPlaneError) as err:
        client.create_environment(name="x", platform="test", colour="blue")
    assert err.value.status_code == 422 and "colour" in err.value.message


def test_unreachable_server_is_status_zero() -> None:
    client = ControlPlaneClient(f"http://127.0.0.1:{free_port()}", ADMIN, timeout=2)
    with pytest.raises(ControlPlaneError) as err:
        client.list_environments()
    assert err.value.status_code == 0 and err.value.unreachable
    assert "cannot reach" in err.value.message


def test_agent_calls(client: ControlPlaneClient, demo_package: Path) -> None:
    package = client.upload_package(demo_package)
    env = client.create_environment(name="pe", platform="test")
    dep = client.create_deployment("iris", env["id"], package["id"])
    state = client.desired_state(env["id"])
    start = time.monotonic()
    # a long poll longer than the client's own 10 s timeout would still be fine; keep it short
    same = client.desired_state(env["id"], revision=state["revision"], timeout=1.5)
    assert same["revision"] == state["revision"] and time.monotonic() - start >= 1.4
    client.report_status(env["id"], {"deployments": [{"id": dep["id"], "state": "launching"}]})
    client.post_events(env["id"], [{"action": "deployment_start", "result": "unknown"}])
    client.post_events(env["id"], [])  # nothing to send: no request
    assert client.get_deployment(dep["id"])["observed"]["state"] == "launching"
    assert client.list_events(environment_id=env["id"], limit=1)[0]["action"] == "deployment_start"
    assert client.replace_model(dep["id"], package["id"])["revision"] == dep["revision"]
    assert client.update_deployment(dep["id"], description="d")["description"] == "d"
    client.delete_deployment(dep["id"])
    assert client.list_deployments(environment_id=env["id"]) == []

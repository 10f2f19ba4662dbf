"""Fixtures for the control-plane tests: an app on a temp SQLite file, a demo package,
and (for the `postgres` marker) a real PostgreSQL cluster started from Debian's package."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deckhand.server.app import create_app
from deckhand.server.settings import ServerSettings
from deckhand.server.testing import free_port

ADMIN_TOKEN = "dh_test-admin-token-0123456789abcdef"


@pytest.fixture(scope="session")
def demo_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deckhand.packages.demo import train_demo_package

    path = tmp_path_factory.mktemp("packages") / "iris.dhpkg"
    train_demo_package(path)
    return path


@pytest.fixture(scope="session")
def second_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deckhand.packages.demo import train_demo_package

    path = tmp_path_factory.mktemp("packages") / "iris-2.dhpkg"
    train_demo_package(path, seed=1, name="iris-v2")
    return path


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    return ServerSettings(data_dir=tmp_path / "data", bootstrap_token=ADMIN_TOKEN, long_poll_recheck_seconds=0.5)


@pytest.fixture
def api(settings: ServerSettings) -> Iterator[TestClient]:
    """A TestClient authenticated as admin."""
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


@pytest.fixture
def upload(api: TestClient) -> Callable[[Path], dict]:
    """Upload a package file as admin; returns the created package."""

    def _upload(path: Path) -> dict:
        response = api.post(
            "/api/v1/model-packages",
            content=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 201, response.text
        return response.json()

    return _upload


@pytest.fixture
def package(upload: Callable[[Path], dict], demo_package: Path) -> dict:
    return upload(demo_package)


@pytest.fixture
def environment(api: TestClient) -> dict:
    response = api.post("/api/v1/environments", json={"name": "staging", "platform": "test"})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def deployment(api: TestClient, environment: dict, package: dict) -> dict:
    response = api.post(
        "/api/v1/deployments",
        json={"name": "iris", "environmentId": environment["id"], "modelPackageId": package["id"]},
    )
    assert response.status_code == 201, response.text
    return response.json()


# -- PostgreSQL ------------------------------------------------------------------------


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL is not installed: run scripts/setup/10-system-packages.sh (Debian package `postgresql`)"
        )
    return Path(found[-1]).parent


class PostgresCluster:
    """A throw-away cluster on 127.0.0.1 in a temp dir, run as `postgres` when we are root."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.base = Path(tempfile.mkdtemp(prefix="deckhand-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        return subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.base} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.base / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def create_database(self) -> str:
        import psycopg

        name = f"deckhand_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database on the session's cluster."""
    return postgres_cluster.create_database()


@pytest.fixture
def admin_token() -> str:
    return ADMIN_TOKEN

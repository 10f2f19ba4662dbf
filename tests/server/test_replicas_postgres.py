"""Several control-plane replicas on one PostgreSQL: an agent's long poll on one replica wakes
within a second when a change is made through another (LISTEN/NOTIFY), also after its
listening connection was killed; replicas started together migrate the schema once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from tests.postgres_fixtures import PostgresCluster

from deckhand.client import ControlPlaneClient
from deckhand.server.db.locks import MIGRATIONS_LOCK
from deckhand.server.db.migrate import alembic_config
from deckhand.server.db.session import normalize_database_url
from deckhand.server.services.notifier import RevisionNotifier
from deckhand.server.services.revision_channel import RevisionListener
from deckhand.server.services.tokens import BOOTSTRAP_TOKEN_NAME
from deckhand.server.testing import ServerProcess, wait_healthy
from deckhand.testing import wait_until

pytestmark = pytest.mark.postgres

ADMIN = "dh_replicas-admin-token-0123456789abcdef"
# Far above the test's bounds: only a LISTEN/NOTIFY wake-up can end a long poll in time.
RECHECK = ["--long-poll-recheck-seconds", "600"]


def _listeners(url: str) -> set[int]:
    """The backends LISTENing on the test's database."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()"
        ).fetchall()
    return {pid for (pid,) in rows}


def _kill_listeners(url: str) -> set[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND datname = current_database()"
        ).fetchall()
    return {pid for (pid, _) in rows}


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: PostgresCluster
) -> Iterator[tuple[str, ServerProcess, ServerProcess]]:
    """Two `deckhand server` processes, each with its own port and data dir, on one database."""
    url = postgres_cluster.create_database()
    root = tmp_path_factory.mktemp("replicas")
    a = ServerProcess(root / "a", ADMIN, database_url=url, extra_args=RECHECK).start()
    try:
        with ServerProcess(root / "b", ADMIN, database_url=url, extra_args=RECHECK) as b:
            wait_until(lambda: len(_listeners(url)) == 2, 10, what="both replicas to LISTEN")
            yield url, a, b
    finally:
        a.stop()


def _environment(admin: ControlPlaneClient, name: str) -> tuple[str, str]:
    """A new environment and an agent token for it."""
    env = admin.create_environment(name=name, platform="test")
    token = admin.create_token(f"{name}-agent", "agent", [env["id"]])["token"]
    return env["id"], token


class LongPoll:
    """An agent's desired-state long poll in a thread; `returned_at` is time.monotonic()."""

    def __init__(self, url: str, token: str, env_id: str, revision: int) -> None:
        self.result: dict[str, Any] = {}
        self.returned_at = 0.0
        self._args = (url, token, env_id, revision)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        time.sleep(0.5)  # the request reaches the replica and waits
        assert self._thread.is_alive(), f"the long poll did not wait: {self.result}"

    def _run(self) -> None:
        url, token, env_id, revision = self._args
        response = httpx.get(
            f"{url}/api/v1/agent/environments/{env_id}/desired-state",
            params={"revision": revision, "timeout": 30},
            headers={"Authorization": f"Bearer {token}"},
            timeout=40,
        )
        self.returned_at = time.monotonic()
        self.result = response.json()

    def join(self, timeout: float) -> dict[str, Any]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the long poll was not woken within {timeout} s"
        return self.result


def _wake_up_seconds(a: ServerProcess, b: ServerProcess, demo_package: Path, name: str) -> float:
    """Long-poll on A, create a deployment through B: how long until A's poll returns."""
    admin_b = ControlPlaneClient(b.url, ADMIN)
    env_id, agent_token = _environment(admin_b, name)
    package = admin_b.upload_package(demo_package)
    revision = ControlPlaneClient(a.url, agent_token).desired_state(env_id)["revision"]
    poll = LongPoll(a.url, agent_token, env_id, revision)
    changed_at = time.monotonic()
    admin_b.create_deployment(name="iris", environment_id=env_id, model_package_id=package["id"])
    state = poll.join(10)
    assert state["revision"] == revision + 1 and [d["name"] for d in state["deployments"]] == ["iris"]
    return poll.returned_at - changed_at


def test_long_poll_wakes_across_replicas(
    replicas: tuple[str, ServerProcess, ServerProcess], demo_package: Path
) -> None:
    _, a, b = replicas
    seconds = _wake_up_seconds(a, b, demo_package, "across")
    print(f"wake-up across replicas: {seconds * 1000:.0f} ms")
    assert seconds < 1.0


def test_long_poll_wakes_after_the_listener_reconnects(
    replicas: tuple[str, ServerProcess, ServerProcess], demo_package: Path
) -> None:
    url, a, b = replicas
    admin_b = ControlPlaneClient(b.url, ADMIN)
    env_id, agent_token = _environment(admin_b, "reconnect")
    package = admin_b.upload_package(demo_package)
    revision = ControlPlaneClient(a.url, agent_token).desired_state(env_id)["revision"]

    # A change made while the listeners are being killed: delivered before, or made up for
    # by waking every waiter after the reconnect.
    poll = LongPoll(a.url, agent_token, env_id, revision)
    killed = _kill_listeners(url)
    assert len(killed) == 2
    admin_b.create_deployment(name="iris", environment_id=env_id, model_package_id=package["id"])
    assert poll.join(10)["revision"] == revision + 1
    wait_until(lambda: len(_listeners(url) - killed) == 2, 10, what="both replicas to LISTEN again")
    assert "revision listener reconnected" in a.output()

    # And after the reconnect a change through B wakes A as fast as before.
    seconds = _wake_up_seconds(a, b, demo_package, "after-reconnect")
    print(f"wake-up after a reconnect: {seconds * 1000:.0f} ms")
    assert seconds < 1.0


def test_listener_wakes_every_waiter_after_reconnecting(postgres_url: str) -> None:
    """A notification sent while the listener was away is lost: after reconnecting it wakes
    every waiter, whose re-read of the revision finds the change."""

    async def scenario() -> None:
        notifier = RevisionNotifier()
        events = [notifier.event_for("e1"), notifier.event_for("e2")]
        engine = create_engine(normalize_database_url(postgres_url))
        listener = RevisionListener(engine, notifier)
        listener.start()
        try:
            # connecting wakes everyone (nothing could be heard before); then kill the connection
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), timeout=10)
            events = [notifier.event_for("e1"), notifier.event_for("e2")]
            killed = await asyncio.to_thread(_kill_listeners, postgres_url)
            assert len(killed) == 1
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), timeout=10)
            assert len(await asyncio.to_thread(_listeners, postgres_url) - killed) == 1
        finally:
            await asyncio.to_thread(listener.stop)
            engine.dispose()

    asyncio.run(scenario())


def _waiting_for_advisory_locks(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


def test_replicas_started_together_migrate_once(tmp_path: Path, postgres_url: str) -> None:
    """Three replicas on an empty database, all let loose on it at one moment: the test holds
    the migrations lock until the three wait for it (starting processes alone staggers them)."""
    servers = [ServerProcess(tmp_path / f"r{i}", ADMIN, database_url=postgres_url) for i in range(3)]
    with psycopg.connect(postgres_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATIONS_LOCK,))
        try:
            for server in servers:  # ChildProcess.start: launch all three before waiting for any
                super(ServerProcess, server).start()
            wait_until(lambda: _waiting_for_advisory_locks(holder) == 3, 60, what="3 replicas to wait for the lock")
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATIONS_LOCK,))
    try:
        for server in servers:
            wait_healthy(server.url, 60, server.process)
            assert ControlPlaneClient(server.url, ADMIN).list_environments() == []
        engine = create_engine(normalize_database_url(postgres_url))
        head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        engine.dispose()
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
            assert conn.execute("SELECT name FROM api_tokens").fetchall() == [(BOOTSTRAP_TOKEN_NAME,)]
        logs = [server.output() for server in servers]
        for log in logs:
            assert "another replica holds the migrations lock" in log
            assert "Traceback" not in log and "ERROR" not in log, log
        assert sum("Running upgrade  -> 0001" in log for log in logs) == 1  # the others found the head
        assert sum("created admin token" in log for log in logs) == 1
    finally:
        for server in servers:
            server.stop()

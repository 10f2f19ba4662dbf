"""Wake the long polls of every replica sharing a PostgreSQL database, through LISTEN/NOTIFY.

A transaction that changes an environment's desired state calls `announce` (from
`environments.bump_revision`): `pg_notify` queues the environment's id, and PostgreSQL
delivers it to every listening connection when, and only if, the transaction commits.
Each replica keeps one such connection in a `RevisionListener` thread that hands every id
to its local `RevisionNotifier`. The replica's own announcements come back too: waking its
waiters a second time is harmless (they re-read the revision). On SQLite (one process)
neither does anything; the long poll's periodic re-check remains the safety net for both.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from deckhand.server.services.notifier import RevisionNotifier

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

CHANNEL = "deckhand_revisions"
# The listener waits for notifications this long at a time, then checks whether to stop.
POLL_SECONDS = 0.25
# Reconnect delays: doubled after each failure, back to the first after a good connection.
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
# A listening connection only receives; TCP keepalives notice a peer that vanished silently.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def announce(session: Session, environment_id: str) -> None:
    """Tell the other replicas, at commit, that `environment_id`'s desired state changed."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, environment_id)))


class RevisionListener:
    """One thread, one dedicated connection: LISTEN, hand each notification to `notifier`,
    reconnect with backoff when the connection drops. `start()` and `stop()` from the app's
    lifespan."""

    def __init__(self, engine: Engine, notifier: RevisionNotifier) -> None:
        # the engine's own connection arguments: same server, credentials and TLS settings
        _, kwargs = engine.dialect.create_connect_args(engine.url)
        self._connect_kwargs: dict[str, Any] = {
            "connect_timeout": 10,
            **KEEPALIVES,
            "application_name": "deckhand revision listener",
            **kwargs,
        }
        self._notifier = notifier
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="deckhand-revision-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        import psycopg  # the `postgres` extra: only needed when the database is PostgreSQL

        delay = FIRST_RETRY_SECONDS
        lost = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(autocommit=True, **self._connect_kwargs) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if lost:
                        log.info("revision listener reconnected to the database")
                    else:
                        log.info("revision listener: waiting for changes made through other replicas")
                    # Whatever was announced while we were not listening is lost: every waiter re-reads.
                    self._notifier.notify_all()
                    delay = FIRST_RETRY_SECONDS
                    self._listen(conn)
            except Exception as exc:  # the connection dropped (or a bug): listen again, never give up
                if self._stopping.is_set():
                    break
                lost = True
                log.warning(
                    "revision listener lost its database connection (%s); reconnecting in %.1f s",
                    " ".join(str(exc).split()) or type(exc).__name__,
                    delay,
                    exc_info=not isinstance(exc, psycopg.Error),
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stopping.is_set():
            for notification in conn.notifies(timeout=POLL_SECONDS):
                self._notifier.notify(notification.payload)

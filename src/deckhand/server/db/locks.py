"""PostgreSQL advisory locks that serialise start-up work between replicas started together
(no-ops on SQLite, where one process owns the file)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# Constant keys, the same in every replica; any 64-bit number no other application uses.
MIGRATIONS_LOCK = 0x6465636B68616E64  # "deckhand" in ASCII
BOOTSTRAP_LOCK = MIGRATIONS_LOCK + 1


@contextmanager
def session_lock(connection: Connection, key: int, what: str) -> Iterator[None]:
    """Hold a session-level advisory lock on `connection` for the block: it outlives the
    block's commits, so Alembic may commit as it likes, and dies with the connection if the
    process does."""
    if connection.dialect.name != "postgresql":
        yield
        return
    if not connection.scalar(select(func.pg_try_advisory_lock(key))):
        log.info("another replica holds the %s lock; waiting for it", what)
        connection.execute(select(func.pg_advisory_lock(key)))
    connection.commit()  # the lock is the session's, not the transaction's
    try:
        yield
    finally:
        connection.rollback()  # whatever failed inside, the unlock must run
        connection.execute(select(func.pg_advisory_unlock(key)))
        connection.commit()


def transaction_lock(session: Session, key: int) -> None:
    """Wait for an advisory lock released when the session's transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(key)))

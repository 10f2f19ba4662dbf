"""Run the Alembic migrations shipped inside the package (done at every start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

from deckhand.server.db.locks import MIGRATIONS_LOCK, session_lock

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine, connection: Connection | None = None) -> Config:
    """`connection`: run on it (env.py opens its own from `engine` otherwise)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    config.attributes["connection"] = connection
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it is already there.

    On PostgreSQL under an advisory lock held by the connection Alembic migrates on:
    replicas started together queue, the first migrates, the others find the head."""
    with engine.connect() as connection, session_lock(connection, MIGRATIONS_LOCK, "migrations"):
        command.upgrade(alembic_config(engine, connection), "head")

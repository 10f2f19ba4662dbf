"""The Alembic migrations shipped in the package build exactly the schema the models
describe, on SQLite and on PostgreSQL, and running them again is a no-op."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from deckhand.server.db.migrate import alembic_config, upgrade_to_head
from deckhand.server.db.models import Base
from deckhand.server.db.session import Database


def _check(url: str) -> None:
    db = Database(url)
    try:
        upgrade_to_head(db.engine)
        upgrade_to_head(db.engine)  # idempotent
        head = ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head()
        with db.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        tables = set(inspect(db.engine).get_table_names())
        assert {"api_tokens", "model_packages", "environments", "deployments", "events"} <= tables
    finally:
        db.dispose()


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'deckhand.db'}")


@pytest.mark.postgres
def test_postgres_schema_matches_models(postgres_url: str) -> None:
    _check(postgres_url)

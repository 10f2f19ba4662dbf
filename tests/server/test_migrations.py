"""The Alembic migrations shipped in the package build exactly the schema the models
describe, on SQLite and on PostgreSQL, and running them again is a no-op; upgrades
carry existing data forward (0003 backfills each deployment's revision 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

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


def _backfill(url: str) -> None:
    """A database at 0002 holding a deployment (created by 'alice', since replaced, now
    running package p2) upgrades to head with revision 1 = p2, dated and credited."""
    db = Database(url)
    try:
        command.upgrade(alembic_config(db.engine), "0002")
        now = "2026-11-30 10:00:00"
        statements = [
            "INSERT INTO model_packages (id, name, format, target_type, class_labels, features, sha256, size, "
            "manifest, created_at) VALUES ('p2', 'iris-v2', 'sklearn', 'multiclass', '[]', '[]', 'x', 1, '{}', :now)",
            "INSERT INTO environments (id, name, description, platform, plugin, plugin_config, key_value_config, "
            "monitoring_enabled, revision, created_at, updated_at) "
            "VALUES ('e1', 'staging', '', 'test', 'test', '{}', '{}', false, 3, :now, :now)",
            "INSERT INTO deployments (id, name, description, environment_id, model_package_id, active, "
            "key_value_config, revision, created_at, updated_at) "
            "VALUES ('d1', 'iris', '', 'e1', 'p2', true, '{}', 2, :now, :now)",
            "INSERT INTO events (timestamp, deployment_id, kind, action, result, message, actor) "
            "VALUES (:now, 'd1', 'api', 'deployment.create', 'passing', '', 'alice')",
        ]
        with db.engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), {"now": now})
        upgrade_to_head(db.engine)
        with db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT deployment_id, number, model_package_id, created_by, reason, note, rollback_to "
                     "FROM deployment_revisions")
            ).all()  # fmt: skip
        assert len(rows) == 1
        dep, number, package, by, reason, note, rollback_to = rows[0]
        assert (dep, number, package, by, reason, rollback_to) == ("d1", 1, "p2", "alice", None, None)
        assert "history began" in note
    finally:
        db.dispose()


def test_sqlite_upgrade_backfills_revision_1(tmp_path: Path) -> None:
    _backfill(f"sqlite:///{tmp_path / 'deckhand.db'}")


@pytest.mark.postgres
def test_postgres_upgrade_backfills_revision_1(postgres_url: str) -> None:
    _backfill(postgres_url)

"""Initial schema: tokens, model packages, environments, deployments, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("environment_ids", sa.JSON(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "environments",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("plugin", sa.String(length=200), nullable=False),
        sa.Column("plugin_config", sa.JSON(), nullable=False),
        sa.Column("key_value_config", sa.JSON(), nullable=False),
        sa.Column("monitoring_enabled", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("status_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("environment_id", sa.String(length=24), nullable=True),
        sa.Column("deployment_id", sa.String(length=24), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("result", sa.String(length=20), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_events_deployment", "events", ["deployment_id", "id"], unique=False)
    op.create_index("ix_events_environment", "events", ["environment_id", "id"], unique=False)

    op.create_table(
        "model_packages",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=40), nullable=False),
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("class_labels", sa.JSON(), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("environment_id", sa.String(length=24), nullable=False),
        sa.Column("model_package_id", sa.String(length=24), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("key_value_config", sa.JSON(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("observed_state", sa.String(length=20), nullable=True),
        sa.Column("observed_model_id", sa.String(length=100), nullable=True),
        sa.Column("observed_prediction_url", sa.Text(), nullable=True),
        sa.Column("observed_message", sa.Text(), nullable=True),
        sa.Column("observed_old_model_in_use", sa.Boolean(), nullable=True),
        sa.Column("observed_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["environment_id"], ["environments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_package_id"], ["model_packages.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_deployments_environment_deleted",
        "deployments",
        ["environment_id", "deleted_at"],
        unique=False,
    )
    op.create_index("ix_deployments_model_package_id", "deployments", ["model_package_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_deployments_model_package_id", table_name="deployments")
    op.drop_index("ix_deployments_environment_deleted", table_name="deployments")

    op.drop_table("deployments")
    op.drop_table("model_packages")
    op.drop_index("ix_events_environment", table_name="events")
    op.drop_index("ix_events_deployment", table_name="events")

    op.drop_table("events")
    op.drop_table("environments")
    op.drop_table("api_tokens")

"""Rollouts (canaries), challengers, and monitoring per model of a deployment.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_rollouts",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("deployment_id", sa.String(length=24), nullable=False),
        sa.Column("model_package_id", sa.String(length=24), nullable=False),
        sa.Column("from_package_id", sa.String(length=24), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("gates", sa.JSON(), nullable=False),
        sa.Column("sticky", sa.JSON(), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("last_gates", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deployment_rollouts_deployment", "deployment_rollouts", ["deployment_id", "started_at"])
    op.create_table(
        "deployment_challengers",
        sa.Column("deployment_id", sa.String(length=24), nullable=False),
        sa.Column("model_package_id", sa.String(length=24), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("deployment_id", "model_package_id"),
    )
    op.create_table(
        "monitoring_model_buckets",
        sa.Column("deployment_id", sa.String(length=100), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("user_errors", sa.BigInteger(), nullable=False),
        sa.Column("system_errors", sa.BigInteger(), nullable=False),
        sa.Column("latency", sa.JSON(), nullable=False),
        sa.Column("compared", sa.BigInteger(), nullable=False),
        sa.Column("agreed", sa.BigInteger(), nullable=False),
        sa.Column("abs_diff_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("deployment_id", "model_id", "minute"),
    )
    op.create_table(
        "monitoring_model_predictions",
        sa.Column("deployment_id", sa.String(length=100), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("deployment_id", "model_id", "minute"),
    )


def downgrade() -> None:
    op.drop_table("monitoring_model_predictions")
    op.drop_table("monitoring_model_buckets")
    op.drop_table("deployment_challengers")
    op.drop_index("ix_deployment_rollouts_deployment", table_name="deployment_rollouts")
    op.drop_table("deployment_rollouts")

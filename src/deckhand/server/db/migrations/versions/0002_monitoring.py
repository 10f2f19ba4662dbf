"""Monitoring: counted sources, per-minute service-health buckets, per-minute distributions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_sources",
        sa.Column("source_id", sa.String(length=300), nullable=False),
        sa.Column("batch_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source_id"),
    )
    op.create_index("ix_monitoring_sources_received", "monitoring_sources", ["received_at"], unique=False)
    op.create_table(
        "monitoring_service_buckets",
        sa.Column("deployment_id", sa.String(length=100), nullable=False),
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=True),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("user_errors", sa.BigInteger(), nullable=False),
        sa.Column("system_errors", sa.BigInteger(), nullable=False),
        sa.Column("latency", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("deployment_id", "minute"),
    )
    op.create_table(
        "monitoring_distributions",
        sa.Column("deployment_id", sa.String(length=100), nullable=False),
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("deployment_id", "minute", "role", "name"),
    )


def downgrade() -> None:
    op.drop_table("monitoring_distributions")
    op.drop_table("monitoring_service_buckets")
    op.drop_index("ix_monitoring_sources_received", table_name="monitoring_sources")
    op.drop_table("monitoring_sources")

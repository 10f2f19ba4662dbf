"""Accuracy: deployments' association-id settings, predictions by association id, actuals,
per-minute accuracy sums.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("association_id", sa.JSON(), nullable=True))
    op.create_table(
        "scored_rows",
        sa.Column("deployment_id", sa.String(length=24), nullable=False),
        sa.Column("association_id", sa.String(length=200), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("prediction", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("probabilities", sa.JSON(), nullable=True),
        sa.Column("class_names", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("deployment_id", "association_id", "model_id"),
    )
    op.create_table(
        "actuals",
        sa.Column("deployment_id", sa.String(length=24), nullable=False),
        sa.Column("association_id", sa.String(length=200), nullable=False),
        sa.Column("number", sa.Float(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("deployment_id", "association_id"),
    )
    op.create_table(
        "accuracy_buckets",
        sa.Column("deployment_id", sa.String(length=24), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("sums", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("deployment_id", "model_id", "minute"),
    )


def downgrade() -> None:
    op.drop_table("accuracy_buckets")
    op.drop_table("actuals")
    op.drop_table("scored_rows")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("association_id")

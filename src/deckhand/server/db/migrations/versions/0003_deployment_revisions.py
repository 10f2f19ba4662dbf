"""Deployment revisions: every model a deployment has run; revision 1 backfilled.

Each existing deployment gets revision 1 = the package it runs now (what it ran before is
not known), dated at its creation and credited to whoever created it when the
`deployment.create` event still says so.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BACKFILL_NOTE = "recorded when revision history began (schema upgrade): the model in use then"


def upgrade() -> None:
    op.create_table(
        "deployment_revisions",
        sa.Column("deployment_id", sa.String(length=24), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_package_id", sa.String(length=24), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("rollback_to", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("deployment_id", "number"),
    )
    creator = (
        "(SELECT e.actor FROM events e WHERE e.deployment_id = d.id AND e.action = 'deployment.create' "
        "ORDER BY e.id LIMIT 1)"
    )
    op.get_bind().execute(
        sa.text(
            "INSERT INTO deployment_revisions "
            "(deployment_id, number, model_package_id, created_at, created_by, reason, note, rollback_to) "
            f"SELECT d.id, 1, d.model_package_id, d.created_at, {creator}, NULL, :note, NULL FROM deployments d"
        ),
        {"note": BACKFILL_NOTE},
    )


def downgrade() -> None:
    op.drop_table("deployment_revisions")

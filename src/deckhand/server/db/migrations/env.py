"""Alembic environment: the engine (or a connection of it) comes from `deckhand.server.db.migrate`."""

from __future__ import annotations

from contextlib import nullcontext

from alembic import context
from sqlalchemy import Connection

from deckhand.server.db.models import Base

config = context.config
engine = config.attributes["engine"]
given: Connection | None = config.attributes.get("connection")

# A given connection (it holds the migrations lock) stays open for its owner to close.
with nullcontext(given) if given is not None else engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()

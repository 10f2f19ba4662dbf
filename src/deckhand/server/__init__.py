"""The control plane: `deckhand server`, an HTTP API over SQLAlchemy 2 and Alembic.

Layers: `settings` (configuration), `db` (engine, ORM models, migrations), `schemas`
(pydantic request/response models, camelCase on the wire), `services` (the work, one
module per resource), `routers` (thin HTTP adapters), `auth` (tokens and roles) and
`app` (wiring). `create_app(settings)` builds the FastAPI application.
"""

"""Wiring: `create_app(settings)` migrates the database, bootstraps a token, mounts routers,
and runs the rollout controller (and, on PostgreSQL, the revision listener) while the app runs."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from deckhand import __version__
from deckhand.fsutil import private_dir
from deckhand.server.db.locks import BOOTSTRAP_LOCK, transaction_lock
from deckhand.server.db.migrate import upgrade_to_head
from deckhand.server.db.session import Database, mask_database_url
from deckhand.server.docs import install_docs
from deckhand.server.errors import install_error_handlers
from deckhand.server.routers import (
    accuracy,
    agent,
    deployments,
    environments,
    events,
    health,
    notifications,
    packages,
    rollouts,
    tokens,
)
from deckhand.server.routers import monitoring as monitoring_router
from deckhand.server.security_headers import SecurityHeaders
from deckhand.server.services.artifacts import open_artifact_store
from deckhand.server.services.notifications.runner import NotificationLoops
from deckhand.server.services.notifier import RevisionNotifier
from deckhand.server.services.revision_channel import RevisionListener
from deckhand.server.services.rollout_runner import RolloutController
from deckhand.server.services.tokens import BOOTSTRAP_TOKEN_NAME, ensure_bootstrap_token
from deckhand.server.settings import BOOTSTRAP_TOKEN_ENV, ServerSettings
from deckhand.server.state import ControlPlane
from deckhand.server.ui import install_ui

log = logging.getLogger(__name__)

# Every router of the HTTP API (the UI and /docs add their own routes).
API_ROUTERS = tuple(
    module.router
    for module in (
        health,
        packages,
        environments,
        deployments,
        rollouts,
        agent,
        events,
        tokens,
        monitoring_router,
        accuracy,
        notifications,
    )
)

DESCRIPTION = """The deckhand control plane: model packages, prediction environments,
deployments and events, and the endpoints the management agent uses.

Authenticate with `Authorization: Bearer <token>`. Errors are `{"detail": "..."}`;
422 responses also list `errors` with the field of each problem."""


def _announce_bootstrap_token(token: str, preset: bool) -> None:
    """Printed to stdout, once, never logged."""
    if preset:
        print(
            f"deckhand: created admin token {BOOTSTRAP_TOKEN_NAME!r} from ${BOOTSTRAP_TOKEN_ENV}",
            flush=True,
        )
        return
    print(
        "\n"
        "  deckhand: first start, created the admin token (shown only this once):\n\n"
        f"      {token}\n\n"
        "  Use it with `export DECKHAND_TOKEN=...` or `--token`; create more with\n"
        "  `deckhand tokens create`.\n",
        file=sys.stdout,
        flush=True,
    )


def open_control_plane(settings: ServerSettings) -> ControlPlane:
    """Create the data directory, migrate the database and bootstrap the first token."""
    private_dir(settings.data_dir)
    assert settings.database_url is not None
    db = Database(settings.database_url)
    upgrade_to_head(db.engine)
    with db.writing() as session:
        transaction_lock(session, BOOTSTRAP_LOCK)  # replicas started together create one token
        token = ensure_bootstrap_token(session, settings.bootstrap_token)
    if token is not None:
        _announce_bootstrap_token(token, preset=settings.bootstrap_token is not None)
    artifacts = open_artifact_store(settings)
    artifacts.start()  # removes dead uploads' files; an S3 store checks its bucket here
    log.info(
        "control plane ready database=%s artifacts=%s",
        mask_database_url(db.url),
        artifacts.description,
    )
    return ControlPlane(settings=settings, db=db, artifacts=artifacts, notifier=RevisionNotifier())


def _http_surface(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None) -> FastAPI:
    """The routes, error handlers, UI and docs: everything but the control plane behind them."""
    app = FastAPI(
        lifespan=lifespan,
        title="deckhand control plane",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # served by deckhand.server.docs, from the package
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.add_middleware(SecurityHeaders)
    install_error_handlers(app)
    for router in API_ROUTERS:
        app.include_router(router)
    install_ui(app)
    install_docs(app)
    return app


def openapi_document() -> dict[str, Any]:
    """What `/openapi.json` serves, without opening a database (for tools and tests)."""
    return _http_surface().openapi()


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    cp = open_control_plane(settings)

    controller = RolloutController(cp)
    notifications = NotificationLoops(cp)
    # other replicas' changes wake this one's long polls (PostgreSQL; one process on SQLite)
    revisions = RevisionListener(cp.db.engine, cp.notifier) if cp.db.dialect == "postgresql" else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        controller.start()
        notifications.start()
        if revisions is not None:
            revisions.start()
        try:
            yield
        finally:
            if revisions is not None:
                revisions.stop()
            await notifications.stop()
            await controller.stop()
            cp.db.dispose()

    app = _http_surface(lifespan)
    app.state.control_plane = cp
    return app

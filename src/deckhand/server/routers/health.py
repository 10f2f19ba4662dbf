"""Health without authentication: `GET /healthz` (ready: answers only when the database
does) and `GET /livez` (alive: the process answers, whatever the database)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from deckhand import __version__
from deckhand.server.state import CP

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(cp: CP) -> dict[str, str]:
    """Ready to serve: runs `SELECT 1` on the database (a failure is a 5xx). Kubernetes'
    readiness probe; a load balancer's health check."""
    with cp.db.reading() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__, "database": cp.db.dialect}


@router.get("/livez")
async def livez() -> dict[str, str]:
    """Alive: the event loop answers. Touches nothing else, so a database outage makes
    replicas unready (/healthz) without getting them restarted (Kubernetes' liveness probe)."""
    return {"status": "ok", "version": __version__}

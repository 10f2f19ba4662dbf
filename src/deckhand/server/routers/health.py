"""`GET /healthz`: liveness without authentication."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from deckhand import __version__
from deckhand.server.state import CP

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(cp: CP) -> dict[str, str]:
    with cp.db.reading() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__, "database": cp.db.dialect}

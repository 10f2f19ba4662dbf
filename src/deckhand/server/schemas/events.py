"""Event resources."""

from __future__ import annotations

from datetime import datetime

from deckhand.server.schemas.common import ApiModel


class EventOut(ApiModel):
    id: int
    timestamp: datetime
    environment_id: str | None
    deployment_id: str | None
    kind: str
    action: str
    result: str
    duration_seconds: float | None
    message: str
    actor: str | None

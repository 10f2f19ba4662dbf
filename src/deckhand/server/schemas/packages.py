"""Model package resources."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deckhand.server.schemas.common import ApiModel


class ModelPackageOut(ApiModel):
    id: str
    name: str
    format: str
    target_type: str
    class_labels: list[str] | None
    features: list[dict[str, Any]]
    sha256: str
    size: int
    created_at: datetime
    created_by: str | None = None
    manifest: dict[str, Any]

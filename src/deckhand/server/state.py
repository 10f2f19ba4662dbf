"""The objects one control-plane process shares between requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from deckhand.server.db.session import Database
from deckhand.server.services.artifacts import ArtifactStore
from deckhand.server.services.monitoring.storage import SourceRetention
from deckhand.server.services.notifier import RevisionNotifier
from deckhand.server.settings import ServerSettings


@dataclass
class ControlPlane:
    settings: ServerSettings
    db: Database
    artifacts: ArtifactStore
    notifier: RevisionNotifier
    # when this control plane last pruned counted monitoring sources (not shared between apps)
    source_retention: SourceRetention = field(default_factory=SourceRetention)


def get_control_plane(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.control_plane
    return cp


CP = Annotated[ControlPlane, Depends(get_control_plane)]

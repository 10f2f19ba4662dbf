"""A synchronous client of the control plane's HTTP API (used by the CLI and the agent)."""

from deckhand.client.control_plane import ControlPlaneClient
from deckhand.client.errors import ControlPlaneError

__all__ = ["ControlPlaneClient", "ControlPlaneError"]

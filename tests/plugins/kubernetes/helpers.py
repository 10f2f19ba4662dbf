"""Helpers shared by the cluster tests of the Kubernetes plugin and the Helm chart."""

from __future__ import annotations

from typing import Any

from deckhand.testing import wait_until


def wait_for(what: str, check: Any, timeout: float = 60, interval: float = 0.5) -> Any:
    """deckhand.testing.wait_until, with what it waits for first (as these tests read)."""
    return wait_until(check, timeout, interval, what)

"""Helpers shared by the cluster tests of the Kubernetes plugin and the Helm chart."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest


def wait_for(what: str, check: Any, timeout: float = 60, interval: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy (HTTP errors count as "not yet")."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}; last: {last!r}")

"""The one error the client raises."""

from __future__ import annotations

from typing import Any


class ControlPlaneError(Exception):
    """The control plane refused a request, or could not be reached.

    `status_code` is the HTTP status (0 when no response arrived: connection refused,
    timeout, DNS); `message` is the server's `detail`, which says what to fix; `errors`
    lists each problem (`field`, `message`) when the server named them.
    """

    def __init__(self, status_code: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(f"{status_code}: {message}" if status_code else message)
        self.status_code = status_code
        self.message = message
        self.errors = errors or []

    @property
    def unreachable(self) -> bool:
        return self.status_code == 0

"""The web UI's view of the control plane: the public REST API, called in-process with the user's token.

The UI is a client of `/api/v1` like the CLI is, so authentication, roles and scoping are
decided in one place (the API's own dependencies); nothing here reads the database. Calls
go through an ASGI transport into the same application, so no socket or extra port is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp

from deckhand.server.routers.common import API_PREFIX

# The host name of in-process calls; never resolved, it only fills the URL.
INTERNAL_HOST = "deckhand.internal"
INTERNAL_BASE_URL = f"http://{INTERNAL_HOST}"


def _not_internal(record: logging.LogRecord) -> bool:
    """httpx logs every request at INFO; the UI's in-process calls (several per page view) are noise."""
    return INTERNAL_HOST not in record.getMessage()


logging.getLogger("httpx").addFilter(_not_internal)


class ApiCallError(Exception):
    """A non-2xx answer from the API: its status and the `detail` it gave."""

    def __init__(self, status_code: int, detail: str, path: str) -> None:
        super().__init__(f"{path}: {status_code} {detail}")
        self.status_code = status_code
        self.detail = detail
        self.path = path


@dataclass
class UiApi:
    """Calls `/api/v1/...` of `app` as the holder of `token`."""

    app: ASGIApp
    token: str

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self._call("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """A change, as the CLI makes it: a JSON body (or none), the JSON answer back."""
        return await self._call("POST", path, json=body)

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        return await self._call("PATCH", path, json=body)

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        async with httpx.AsyncClient(transport=transport, base_url=INTERNAL_BASE_URL, timeout=30.0) as client:
            response = await client.request(method, API_PREFIX + path, headers=headers, **options)
        if response.status_code >= 400:
            raise ApiCallError(response.status_code, _detail(response), path)
        return response.json() if response.content else None

    async def get_or_none(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """Like `get`, but a 404 (not found, or the route is missing) gives None."""
        try:
            return await self.get(path, params)
        except ApiCallError as exc:
            if exc.status_code == 404:
                return None
            raise


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return str(body)[:500]

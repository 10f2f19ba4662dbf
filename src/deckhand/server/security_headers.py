"""Response headers that keep browsers from misusing what the control plane serves: one
place for the UI's, the API docs' and every other response's."""

from __future__ import annotations

from typing import Any

# Every response: no MIME sniffing, no framing, no referrer to other sites.
COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # not no-referrer: with it, browsers send `Origin: null` on our own form posts
    "Referrer-Policy": "same-origin",
}

# The web UI: no inline script or style anywhere; everything it runs comes from /ui/static.
UI = {
    **COMMON,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
}

# /docs (Swagger UI, served from the package): scripts from here only; Swagger UI sets
# style attributes, hence 'unsafe-inline' for styles alone.
DOCS = {
    **COMMON,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class SecurityHeaders:
    """ASGI middleware: COMMON on every response, unless the response set its own."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in COMMON.items()]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self._headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

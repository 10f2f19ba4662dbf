"""The API docs at /docs: Swagger UI served from an installed package (fastapi-offline ships
its files), so the page works with no internet, under a strict Content-Security-Policy."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from deckhand.server import security_headers
from deckhand.server.errors import NotFound

SWAGGER_UI = Path(str(files("fastapi_offline") / "static"))
ASSETS = {  # what the page loads, and nothing else
    "swagger-ui.css": SWAGGER_UI / "swagger-ui.css",
    "swagger-ui-bundle.js": SWAGGER_UI / "swagger-ui-bundle.js",
    "favicon.png": SWAGGER_UI / "favicon.png",
    "init.js": Path(__file__).parent / "docs_assets" / "init.js",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API docs</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    page = PAGE.format(title=app.title)

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return HTMLResponse(page, headers=security_headers.DOCS)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> Response:
        path = ASSETS.get(name)
        if path is None:
            raise NotFound(f"no docs asset {name!r}")
        return FileResponse(path, headers={**security_headers.DOCS, "Cache-Control": "public, max-age=86400"})

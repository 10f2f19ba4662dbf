"""The control plane's web UI: server-rendered pages under `/ui`, static files under `/ui/static`.

`install_ui(app)` adds both to a control-plane app; see docs/ui.md.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from deckhand.server.ui.router import STATIC_PATH, UI_DIR, UI_PREFIX, router

__all__ = ["UI_PREFIX", "install_ui"]


def install_ui(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=UI_DIR / "static"), name="ui-static")

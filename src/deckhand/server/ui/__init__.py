"""The control plane's web UI: server-rendered pages under `/ui`, static files under `/ui/static`.

`install_ui(app)` adds both to a control-plane app; see docs/ui.md.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from deckhand.server.ui import actions, router

__all__ = ["UI_PREFIX", "UI_ROUTERS", "install_ui"]

UI_PREFIX = router.UI_PREFIX
# The pages (and login) and the buttons of the deployment and notifications pages.
UI_ROUTERS = (router.router, actions.router)


def install_ui(app: FastAPI) -> None:
    for ui_router in UI_ROUTERS:
        app.include_router(ui_router)
    app.mount(router.STATIC_PATH, StaticFiles(directory=router.UI_DIR / "static"), name="ui-static")

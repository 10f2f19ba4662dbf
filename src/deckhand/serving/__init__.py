"""The prediction server: one model (`--package`) or many (`--models-dir`).

create_app(ServeConfig(...), observer=None) -> ASGI app   (observer: deckhand.serving.observers)
run(ServeConfig(...))                        # uvicorn, blocking
"""

from __future__ import annotations

from deckhand.serving.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "run"]


def create_app(config: ServeConfig, observer=None):  # type: ignore[no-untyped-def]
    from deckhand.serving.app import create_app as _create_app

    return _create_app(config, observer)


def run(config: ServeConfig) -> None:
    from deckhand.serving.runner import run as _run

    _run(config)

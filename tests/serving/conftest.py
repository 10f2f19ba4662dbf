"""Fixtures: a real HTTP prediction server on 127.0.0.1 (uvicorn in a thread)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from deckhand.serving.app import PredictionServer, create_app
from deckhand.serving.config import ServeConfig
from deckhand.serving.observers import PredictionObserver, RecordObserver
from deckhand.serving.runner import bind_sockets, guarded_config
from deckhand.testing import GiveUp, wait_until


@contextmanager
def running_server(
    config: ServeConfig, observer: PredictionObserver | RecordObserver | None = None
) -> Iterator[tuple[str, PredictionServer]]:
    config, sockets = bind_sockets(config.model_copy(update={"port": 0, "host": "127.0.0.1"}))
    app = create_app(config, observer=observer)
    server = uvicorn.Server(guarded_config(config, app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise GiveUp("the prediction server's thread exited while starting")
        return bool(server.started)

    wait_until(started, 20, 0.02, what="the prediction server to start")
    try:
        yield f"http://127.0.0.1:{config.port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def serve() -> Callable[..., object]:
    """serve(config, observer=None) -> context manager yielding (base_url, app)."""
    return running_server


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as c:
        yield c

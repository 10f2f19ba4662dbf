"""Fixtures: a real HTTP prediction server on 127.0.0.1 (uvicorn in a thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from deckhand.packages.demo import train_demo_package
from deckhand.serving.app import PredictionServer, create_app
from deckhand.serving.config import ServeConfig
from deckhand.serving.observers import PredictionObserver, RecordObserver
from deckhand.serving.runner import bind_sockets, guarded_config


@contextmanager
def running_server(
    config: ServeConfig, observer: PredictionObserver | RecordObserver | None = None
) -> Iterator[tuple[str, PredictionServer]]:
    config, sockets = bind_sockets(config.model_copy(update={"port": 0, "host": "127.0.0.1"}))
    app = create_app(config, observer=observer)
    server = uvicorn.Server(guarded_config(config, app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the prediction server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def demo_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.dhpkg"
    train_demo_package(path)
    return path


@pytest.fixture(scope="session")
def binary_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("binary") / "binary.dhpkg"
    train_demo_package(path, task="binary")
    return path


@pytest.fixture
def serve() -> Callable[..., object]:
    """serve(config, observer=None) -> context manager yielding (base_url, app)."""
    return running_server


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)
    return time.monotonic() - started


@pytest.fixture
def wait_for() -> Callable[..., float]:
    """wait_for(predicate, timeout=5) polls until true; returns the seconds it took."""
    return _wait_for


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as c:
        yield c

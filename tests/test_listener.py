"""The listener's shutdown: a request whose client has gone, and a request to an
`abort_on_shutdown` path (a long poll), do not hold the server for its graceful period."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

import httpx

from deckhand.listener import ConnectionLimits, GuardedConfig, GuardedServer
from deckhand.testing import free_port, wait_until

GRACE = 10  # what the server would wait for requests in flight without the rules above


async def waiting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Every request waits a minute before it answers, like a long poll."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/ping":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await asyncio.sleep(60)  # the point of the app: an answer that takes a minute
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})


def test_shutdown_cancels_abandoned_requests_and_long_polls_at_once() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = GuardedConfig(
        waiting_app,
        host="127.0.0.1",
        port=port,
        limits=ConnectionLimits(),
        prompt_shutdown=True,
        abort_on_shutdown=re.compile(r"^/poll$"),
        timeout_graceful_shutdown=GRACE,
        lifespan="off",
        log_level="warning",
    )
    server = GuardedServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: httpx.get(f"{url}/ping", timeout=1).status_code == 200, 10, what="listener up")

    try:  # a client that gives up: its request keeps waiting in the server
        httpx.get(f"{url}/abandoned", timeout=0.3)
    except httpx.TimeoutException:
        pass
    polled: list[BaseException | int] = []

    def long_poll() -> None:  # connected until the server ends it
        try:
            polled.append(httpx.get(f"{url}/poll", timeout=30).status_code)
        except httpx.HTTPError as exc:
            polled.append(exc)

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    # both requests are in the server: the abandoned one and the long poll
    wait_until(lambda: len(server.server_state.tasks) >= 2, 10, 0.01, what="the long poll in the server")

    started = time.monotonic()
    server.should_exit = True
    thread.join(GRACE + 5)
    seconds = time.monotonic() - started
    print(f"listener stopped {seconds:.2f} s after the request to stop")
    assert not thread.is_alive()
    assert seconds < 1.5, f"the listener waited {seconds:.2f} s for requests nobody will get an answer to"
    poller.join(5)
    assert polled == [503]  # ended by the shutdown with an answer the client retries

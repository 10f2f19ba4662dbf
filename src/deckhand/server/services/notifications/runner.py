"""The notification loops of a control-plane process: evaluate the policies every
`notify_tick_seconds`, dispatch due deliveries every DISPATCH_SECONDS; each round runs in a
worker thread. Started and stopped by the app's lifespan, as the rollout controller is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from deckhand.server.services.notifications import engine
from deckhand.server.state import ControlPlane

log = logging.getLogger(__name__)

DISPATCH_SECONDS = 1.0


async def _every(seconds: float, work: Callable[[], object], what: str) -> None:
    while True:
        try:
            await run_in_threadpool(work)
        except Exception:  # e.g. the database is away for a moment: try again next round
            log.exception("%s round failed", what)
        await asyncio.sleep(seconds)


class NotificationLoops:
    """`start()` on the running event loop, `await stop()` before the database closes."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        db = self.cp.db
        self._tasks = [
            loop.create_task(_every(self.cp.settings.notify_tick_seconds, lambda: engine.evaluate(db), "evaluate")),
            loop.create_task(_every(DISPATCH_SECONDS, lambda: engine.dispatch(db), "dispatch")),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

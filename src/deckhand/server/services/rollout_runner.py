"""The rollout controller's loop: a task of the control plane's event loop that runs
`rollouts.tick` in a worker thread every `rollout_tick_seconds` and wakes the long polls of
the environments whose desired state it changed. Started and stopped by the app's lifespan.
Every control-plane process may run one: the transitions are conditional updates."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.concurrency import run_in_threadpool

from deckhand.server.services.rollouts import MonitoringModels, MonitoringReader, tick
from deckhand.server.state import ControlPlane

log = logging.getLogger(__name__)


async def run_controller(cp: ControlPlane, reader: MonitoringReader) -> None:
    interval = cp.settings.rollout_tick_seconds
    while True:
        try:
            changed = await run_in_threadpool(tick, cp.db, reader)
        except Exception:  # e.g. the database is away for a moment: try again next round
            log.exception("rollout controller round failed")
            changed = set()
        for environment_id in changed:
            cp.notifier.notify(environment_id)
        await asyncio.sleep(interval)


class RolloutController:
    """`start()` on the running event loop, `await stop()` before the database closes."""

    def __init__(self, cp: ControlPlane, reader: MonitoringReader | None = None) -> None:
        self.cp = cp
        self.reader = reader or MonitoringModels()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(run_controller(self.cp, self.reader))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

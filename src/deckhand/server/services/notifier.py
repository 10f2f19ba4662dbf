"""Wake long polls when an environment's desired state changes.

One asyncio.Event per environment that has waiters. A writer calls `notify(env_id)`
after its transaction commits, from any thread; waiters take the event *before* reading
the revision, so a change committed in between is never missed. Changes made by other
server processes arrive through `revision_channel` on PostgreSQL; the periodic re-check in
the long-poll loop is the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib


class RevisionNotifier:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}

    def event_for(self, environment_id: str) -> asyncio.Event:
        """Call on the event loop; the returned event is set by the next notify()."""
        self._loop = asyncio.get_running_loop()
        event = self._events.get(environment_id)
        if event is None:
            event = self._events[environment_id] = asyncio.Event()
        return event

    def notify(self, environment_id: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closing: nobody waits any more
            loop.call_soon_threadsafe(self._fire, environment_id)

    def notify_all(self) -> None:
        """Wake every waiter: for when changes may have been missed (each re-reads its revision)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._fire_all)

    def _fire_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()

    def _fire(self, environment_id: str) -> None:
        event = self._events.pop(environment_id, None)
        if event is not None:
            event.set()

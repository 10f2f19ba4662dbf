"""The agent's time: `now()` and timers, behind a small protocol so that tests drive time
by hand (tests/agent/fakes.py) instead of sleeping. Every wait with a deadline goes
through `until`, which starts no task (a timer callback resolves a future)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol


class Cancellable(Protocol):
    def cancel(self) -> Any: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], Any]) -> Cancellable: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], Any]) -> Cancellable:
        return asyncio.get_running_loop().call_later(max(0.0, when - self.now()), callback)


async def until(clock: Clock, futures: Collection[asyncio.Future[Any]], deadline: float | None) -> bool:
    """Wait until one of `futures` is done or `clock` reaches `deadline` (None: no limit);
    True if one is done. The futures are left as they are (not cancelled)."""
    if any(f.done() for f in futures):
        return True
    alarm: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def ring() -> None:
        if not alarm.done():
            alarm.set_result(None)

    timer = clock.call_at(deadline, ring) if deadline is not None else None
    try:
        await asyncio.wait({*futures, alarm}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if timer is not None:
            timer.cancel()
        alarm.cancel()
    return any(f.done() for f in futures)


async def sleep_until(clock: Clock, deadline: float) -> None:
    await until(clock, (), deadline)

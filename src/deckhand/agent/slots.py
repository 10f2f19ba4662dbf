"""One slot per deployment: what the agent last saw of it, the action it runs, and how
often that failed. A slot is busy from the moment an action is planned until that
action's work has really ended — a plugin thread past its timeout included — and during
its retry backoff; `plan()` leaves busy deployments alone, so a deployment never has two
actions at once. The parallelism permits live here too: an action holds one while its
plugin works, so a thread past its timeout keeps its permit until it returns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from deckhand.agent.clock import Clock
from deckhand.agent.drivers import PluginCall
from deckhand.agent.model import Action, ObservedDeployment


class SlotState(StrEnum):
    IDLE = "idle"  # nothing runs; plan() may give it an action
    RUNNING = "running"  # an action is planned or runs (waiting for a permit included)
    OVERRUNNING = "overrunning"  # past its timeout in a thread that cannot be killed: waits for it
    BACKOFF = "backoff"  # the last action failed; idle again at retry_at


@dataclass(eq=False)
class Slot:
    deployment_id: str
    observed: ObservedDeployment | None = None
    action: Action | None = None
    task: asyncio.Task[Any] | None = None
    call: PluginCall | None = None  # the plugin call under way, if the action is that far
    overrunning: bool = False
    failures: int = 0
    retry_at: float | None = None

    def state(self, now: float) -> SlotState:
        if self.task is not None:
            return SlotState.OVERRUNNING if self.overrunning else SlotState.RUNNING
        if self.retry_at is not None and now < self.retry_at:
            return SlotState.BACKOFF
        return SlotState.IDLE

    @property
    def in_thread(self) -> bool:
        """Inside a plugin call that cannot be killed: a shutdown waits for it."""
        return self.call is not None and not self.call.killable

    def begin(self, action: Action, task: asyncio.Task[Any]) -> None:
        assert self.task is None, f"deployment {self.deployment_id} already runs {self.action}"
        self.action, self.task = action, task

    def end(self) -> None:
        """The action's work has ended (or was cancelled): the slot is free again."""
        self.action = self.task = self.call = None
        self.overrunning = False

    def record(self, ok: bool, now: float, retry_base: float, retry_max: float) -> float | None:
        """Count the action's outcome; the retry delay after a failure, else None."""
        if ok:
            self.failures, self.retry_at = 0, None
            return None
        self.failures += 1
        delay = min(retry_base * 2 ** (self.failures - 1), retry_max)
        self.retry_at = now + delay
        return delay


class Slots:
    """Every deployment's slot and the parallelism permits their actions share."""

    def __init__(self, parallelism: int, clock: Clock):
        self.permits = asyncio.Semaphore(parallelism)
        self._clock = clock
        self._slots: dict[str, Slot] = {}

    def get(self, deployment_id: str) -> Slot:
        slot = self._slots.get(deployment_id)
        if slot is None:
            slot = self._slots[deployment_id] = Slot(deployment_id)
        return slot

    def __iter__(self) -> Iterator[Slot]:
        return iter(list(self._slots.values()))

    def busy(self) -> set[str]:
        now = self._clock.now()
        return {s.deployment_id for s in self._slots.values() if s.state(now) is not SlotState.IDLE}

    def running(self) -> set[str]:
        return {s.deployment_id for s in self._slots.values() if s.task is not None}

    def observed(self) -> dict[str, ObservedDeployment]:
        return {s.deployment_id: s.observed for s in self._slots.values() if s.observed is not None}

    def next_retry(self) -> float | None:
        now = self._clock.now()
        pending = [s.retry_at for s in self._slots.values() if s.task is None and s.retry_at and s.retry_at > now]
        return min(pending, default=None)

    def refresh(self, listed: Mapping[str, ObservedDeployment]) -> None:
        """A full listing becomes what is known, except where an action is under way: there
        the action's own view stays (the listing may predate it)."""
        for dep_id, seen in listed.items():
            slot = self.get(dep_id)
            if slot.task is None or slot.observed is None:
                slot.observed = seen
        for dep_id, slot in list(self._slots.items()):
            if dep_id in listed or slot.task is not None:
                continue
            slot.observed = None  # gone from the listing: not running
            if slot.failures == 0 and slot.retry_at is None:
                del self._slots[dep_id]

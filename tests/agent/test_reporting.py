"""The agent's reports: a batch the control plane refuses for good (a 4xx such as 403 for
a deployment that is not the environment's) is dropped, not resent forever ahead of every
later event; one that failed for a passing reason (the server down, a 5xx) is kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.agent.fakes import FakeClock

from deckhand.agent.reporting import Reporter
from deckhand.plugin.action_status import ActionStatus, ActionStatusInfo


class Refusal(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class Sink:
    def __init__(self) -> None:
        self.failure: Exception | None = None
        self.posted: list[list[str]] = []

    async def post_events(self, env_id: str, events: list[dict[str, Any]]) -> None:
        if self.failure is not None:
            raise self.failure
        self.posted.append([e["action"] for e in events])

    async def report_status(self, env_id: str, payload: dict[str, Any]) -> None:
        pass


FAILURES = [(Refusal(403), False), (Refusal(422), False), (Refusal(503), True), (Refusal(401), True), (OSError(), True)]


@pytest.mark.parametrize(("failure", "kept"), FAILURES)
def test_a_batch_refused_for_good_is_dropped_and_the_rest_kept(failure: Exception, kept: bool) -> None:
    async def scenario() -> list[list[str]]:
        clock, sink = FakeClock(), Sink()
        reporter = Reporter(sink, clock)
        reporter.event("d1", "first", ActionStatusInfo(ActionStatus.OK))
        sink.failure = failure
        await reporter.report("env", lambda: {})
        sink.failure = None
        reporter.event("d1", "second", ActionStatusInfo(ActionStatus.OK))
        await clock.advance(1.0)  # past the report throttle
        await reporter.report("env", lambda: {})
        return sink.posted

    posted = asyncio.run(scenario())
    assert posted == [["first", "second"]] if kept else posted == [["second"]]

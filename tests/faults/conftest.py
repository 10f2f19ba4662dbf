"""Set-up of the fault-injection suite: the seed, the rounds, one real stack per variant
(started once for the module) and the summary printed at the end of the run.

    DECKHAND_FAULT_SEED=1234 pytest tests/faults       # replay a run (the seed is printed)
    DECKHAND_FAULT_ROUNDS=40 pytest tests/faults       # kill rounds per variant (default 17)
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from deckhand.faults import Stack

SEED_ENV = "DECKHAND_FAULT_SEED"
ROUNDS_ENV = "DECKHAND_FAULT_ROUNDS"
DEFAULT_ROUNDS = 17  # per variant; three variants: 51 kill rounds
ADMIN = "dh_faults-admin-token-0123456789"

_SEED: int | None = None
SUMMARY: list[str] = []  # one block per variant, printed by pytest_terminal_summary


def seed() -> int:
    global _SEED
    if _SEED is None:
        text = os.environ.get(SEED_ENV, "").strip()
        _SEED = int(text) if text else random.SystemRandom().randrange(1, 2**31)
    return _SEED


def replay_hint() -> str:
    return f"seed {seed()}: replay with {SEED_ENV}={seed()} python -m pytest tests/faults"


def _say(config: pytest.Config, line: str) -> None:
    """Print now, past pytest's output capture (a fixture's output is otherwise kept back)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover - -p no:terminal / no:capture
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="session")
def fault_seed(request: pytest.FixtureRequest) -> int:
    _say(request.config, f"\nfault injection {replay_hint()}")
    return seed()


@pytest.fixture(scope="session")
def fault_rounds() -> int:
    return int(os.environ.get(ROUNDS_ENV) or DEFAULT_ROUNDS)


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
    ],
)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fault_seed: int) -> Iterator[Stack]:
    """The real processes of one variant, started once for the module: the control plane on
    SQLite with the spool channel, on PostgreSQL with the spool channel, or on SQLite with
    RabbitMQ. Whatever is left when the module ends is killed, by pid."""
    database_url = None
    if request.param == "postgresql":
        database_url = request.getfixturevalue("postgres_cluster").create_database()
    if request.param == "rabbitmq":
        from deckhand.monitoring.testing import rabbitmq_available

        why = rabbitmq_available()
        if why:
            pytest.skip(f"{why}; run ./scripts/test (or scripts/setup/60-rabbitmq.sh) to make this variant run")
    base: Path = tmp_path_factory.mktemp(f"faults-{request.param}")
    built = Stack(
        base,
        admin_token=ADMIN,
        database_url=database_url,
        rabbitmq=request.param == "rabbitmq",
        agent_settings={"parallelism": 4},
    )
    built.variant = request.param  # type: ignore[attr-defined]
    try:
        built.start()
        yield built
    finally:
        try:
            built.close()
        finally:
            built.kill_everything_left()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SEED is None:
        return
    terminalreporter.section("fault injection")
    for block in SUMMARY:
        terminalreporter.write_line(block)
    terminalreporter.write_line(replay_hint())

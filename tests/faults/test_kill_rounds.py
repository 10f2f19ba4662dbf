"""Fault injection with real processes: for a bounded number of rounds (seeded, replayable)
SIGKILL one of control plane, agent, prediction server, tracking agent or RabbitMQ at a
random moment of a random operation, bring it back, and check the invariants of
tests/faults/rounds.py once the system converged. Three variants, each started once:
SQLite + spool, PostgreSQL + spool, SQLite + RabbitMQ. Then a clean stop must leave no
process behind."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from deckhand.faults import Stack
from deckhand.testing import command_line, running

from .conftest import SUMMARY, replay_hint
from .rounds import World, balanced_victims, summary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# What each variant leaves for the stop test: the processes seen (pid -> command line).
_SEEN: dict[str, dict[int, str]] = {}


def _ours(stack: Stack) -> dict[int, str]:
    return {pid: command_line(pid) for pid in stack.our_pids()}


def _logs(stack: Stack, lines: int = 25) -> str:
    paths = [
        stack.base / "cp.log",
        stack.work_dir / "agent.log",
        stack.env_dir / "prediction-server.log",
        stack.env_dir / "tracking-agent.log",
        stack.base / "tracking-agent.log",
    ]
    parts = []
    for path in paths:
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


def test_kill_rounds_converge_with_every_invariant(
    stack: Stack, fault_seed: int, fault_rounds: int, demo_package: Path, second_package: Path
) -> None:
    variant = stack.variant  # type: ignore[attr-defined]
    rng = random.Random(f"{fault_seed}:{variant}")
    started = time.monotonic()
    world = World(stack, rng, [demo_package, second_package])
    world.set_up()
    victims = balanced_victims(rng, stack.components(), fault_rounds)
    for number, victim in enumerate(victims, 1):
        plan = world.plan(number, victim)
        try:
            world.run_round(plan)
        except BaseException as exc:
            raise AssertionError(
                f"[{variant}] round {number}/{fault_rounds}: {plan.op} "
                f"(target {plan.target}, model {plan.model}), {victim} SIGKILLed at +{plan.delay} s: {exc}\n"
                f"{replay_hint()}\n{_logs(stack)}"
            ) from exc
        _SEEN.setdefault(variant, {}).update(_ours(stack))
    SUMMARY.append(summary(variant, world.tally, world.ledger, time.monotonic() - started))
    assert world.tally.rounds == fault_rounds


def test_clean_stop_leaves_no_process(stack: Stack) -> None:
    """After every kill and restart, a clean stop (SIGTERM to the agent, the control plane,
    the tracking agent; rabbitmqctl stop) leaves no process of ours: nothing whose command
    line names the test's directory, and none of the pids the rounds saw."""
    variant = stack.variant  # type: ignore[attr-defined]
    seen = {**_SEEN.get(variant, {}), **_ours(stack)}
    assert stack.agent is not None
    assert stack.agent.stop() == 0, stack.agent.output()[-3000:]
    stack.close()
    survivors = stack.kill_everything_left()
    assert survivors == [], f"processes left after a clean stop: {survivors}"
    alive = sorted(f"{pid} {line[:200]}" for pid, line in seen.items() if running(pid) and command_line(pid) == line)
    assert alive == [], f"pids of the stack still running after a clean stop: {alive}"

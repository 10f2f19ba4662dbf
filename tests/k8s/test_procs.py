"""The test environment's process records: liveness of a child this object started is asked
of the child itself, not read from /proc, where a just-forked child still shows the parent."""

from __future__ import annotations

import sys
from pathlib import Path

from k8s_testenv.procs import Procs

from deckhand.testing import wait_until


def test_a_started_child_is_alive_even_when_its_command_line_does_not_match(tmp_path: Path) -> None:
    procs = Procs(tmp_path)
    # the shell execs sleep: /proc/PID/cmdline no longer names argv[0], as it does not yet
    # between fork and exec; the record-based check alone says "exited" here
    procs.start("sleeper", ["/bin/sh", "-c", "exec sleep 30"])
    wait_until(lambda: not Procs(tmp_path).alive("sleeper"), 10, 0.02, what="sh to exec sleep")
    assert not Procs(tmp_path).alive("sleeper")  # another shell has only the record to go by
    assert procs.alive("sleeper")
    procs.stop("sleeper", timeout=5)
    assert not procs.alive("sleeper") and procs.names() == []


def test_stop_from_another_shell_uses_the_record(tmp_path: Path) -> None:
    Procs(tmp_path).start("python", [sys.executable, "-c", "import time; time.sleep(30)"])  # lives on
    other = Procs(tmp_path)
    wait_until(lambda: other.alive("python"), 10, 0.02, what="the child to exec python")
    assert other.alive("python")
    other.stop("python", timeout=5)
    assert other.names() == [] and not other.alive("python")

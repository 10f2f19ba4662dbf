"""The test toolkit: real deckhand processes for tests and benchmarks, and how to wait on them.

`free_port()` is a free loopback port; `wait_until(check, timeout, what=...)` polls until
`check()` is truthy (its async twin `wait_until_async` awaits the check) and, when time runs
out, says what it waited for and the last value or exception it saw. A check raises
`GiveUp` to stop at once (the process it polls has exited).

`ChildProcess` starts a command with its output appended to a log file, and stops (SIGTERM,
then SIGKILL) or kills exactly the process it started. The control plane, agent and
tracking-agent wrappers (deckhand.server.testing, deckhand.agent.testing,
deckhand.monitoring.testing) build on it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

# `python -c` rather than `-m deckhand.cli`: the same entry point a user's `deckhand` runs.
DECKHAND = [sys.executable, "-c", "import sys; from deckhand.cli import main; sys.exit(main())"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's pick), on loopback unless `host` says otherwise."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class GiveUp(AssertionError):
    """Raised by a `wait_until` check to stop waiting at once: what it waits for cannot
    happen any more (the process it polls has exited)."""


class _Tries:
    """What `wait_until` and `wait_until_async` share: the deadline, the last outcome, and
    which exceptions mean "not yet"."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout, self.what = timeout, what
        self.deadline = time.monotonic() + timeout
        self.last: Any = None

    def done(self, value: Any) -> bool:
        self.last = value
        return bool(value)

    @contextmanager
    def not_yet_on_error(self) -> Iterator[None]:
        try:
            yield
        except GiveUp:
            raise
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last failure
            self.last = exc

    def fail_if_late(self) -> None:
        if time.monotonic() >= self.deadline:
            raise AssertionError(f"timed out after {self.timeout} s waiting for {self.what} (last: {self.last!r})")


def wait_until(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll check() until it returns something truthy, and return that. An exception counts
    as not yet (a server still starting), except `GiveUp`, which is raised at once. On
    timeout the AssertionError names `what` and the last value or exception."""
    tries = _Tries(timeout, what)
    while True:
        with tries.not_yet_on_error():
            if tries.done(check()):
                return tries.last
        tries.fail_if_late()
        time.sleep(interval)


async def wait_until_async(
    check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    """`wait_until` inside an event loop: check() may return an awaitable, which is awaited,
    and the loop keeps running between tries."""
    tries = _Tries(timeout, what)
    while True:
        with tries.not_yet_on_error():
            value = check()
            if tries.done(await value if inspect.isawaitable(value) else value):
                return tries.last
        tries.fail_if_late()
        await asyncio.sleep(interval)


class ChildProcess:
    """One child process; `argv()` and `env()` say what it runs, `log_path` gets its output."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, env=self.env())
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no clean-up runs."""
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`); the exit code, None if never started."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode

    def wait(self, timeout: float) -> int:
        assert self.process is not None, "not started"
        return self.process.wait(timeout)

    def __enter__(self) -> Self:
        # `with proc.start():` must not start a second process.
        return self if self.alive() else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# What a test measures of a process's memory (Linux /proc).
def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")


def rss_mib(pid: int) -> float:
    """Resident memory now."""
    return _status_kib(pid, "VmRSS") / 1024


def peak_rss_mib(pid: int) -> float:
    """The highest resident memory since the start or the last reset_peak_rss."""
    return _status_kib(pid, "VmHWM") / 1024


def reset_peak_rss(pid: int) -> None:
    """Start measuring the peak afresh (Linux: writing 5 to clear_refs resets VmHWM)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# The process tree (Linux /proc): what a command started, directly or through its children.
def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm)": state, ppid, ...


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`. Take it before stopping `pid`: once it exits, its
    orphans are re-parented and no longer show as its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""

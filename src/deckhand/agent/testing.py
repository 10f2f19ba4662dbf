"""`deckhand agent` as a real child process, for end-to-end tests and benchmarks.

The agent is started the way a user starts it (`deckhand agent --config agent.yaml`), so
it can be killed with SIGKILL and restarted like the real thing. It writes its log to
`<work_dir>/agent.log`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from deckhand.testing import DECKHAND, ChildProcess, GiveUp, wait_until


def write_agent_config(
    path: Path,
    *,
    url: str,
    token: str,
    work_dir: Path,
    environments: list[dict[str, Any]],
    **settings: Any,
) -> Path:
    """An agent.yaml as a user writes it (camelCase keys); `settings` adds or overrides keys."""
    config = {
        "url": url,
        "token": token,
        "workDir": str(work_dir),
        "environments": environments,
        "resyncIntervalSeconds": 2,
        "longPollSeconds": 10,
        "retryBaseSeconds": 0.2,
        "retryMaxSeconds": 2,
        **settings,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class AgentProcess(ChildProcess):
    """`deckhand agent --config FILE`; its log is `<work_dir>/agent.log`."""

    def __init__(self, config: Path, work_dir: Path, log_level: str = "INFO") -> None:
        super().__init__(work_dir / "agent.log")
        self.config = config
        self.work_dir = work_dir
        self.log_level = log_level

    def argv(self) -> list[str]:
        return [*DECKHAND, "agent", "--config", str(self.config), "--log-level", self.log_level]

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        def logged() -> bool:
            if text in self.output():
                return True
            if not self.alive():
                code = self.process.returncode if self.process else "?"
                raise GiveUp(f"agent exited with {code} before logging {text!r}:\n{self.output()[-3000:]}")
            return False

        try:
            wait_until(logged, timeout, 0.05, what=f"{text!r} in the agent log")
        except GiveUp:
            raise
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output()[-3000:]}") from None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait: the agent stops its plugin and the processes it supervises."""
        return super().stop(timeout)


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains `text` (e.g. a test's temp dir): what a test started,
    directly or through the agent, so it can check none is left and stop exactly those."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry))
    return found

"""Start, record and stop the environment's processes (each one's log is a file).

Every process started by ``up`` is written to ``<state>/pids.json`` with its command
line, so ``down`` (even from another shell) stops exactly those processes and nothing
else, in the reverse order of their start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path


class Procs:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.logs = state / "logs"
        self.file = state / "pids.json"
        # Processes started by this object: asked directly whether they still run. Reading
        # /proc/PID/cmdline right after the start can still show this Python process (the
        # child has forked but not yet exec'd, for milliseconds under load), which looked
        # like "etcd exited while waiting for etcd" and failed whole test sessions.
        self._children: dict[str, subprocess.Popen] = {}

    def _load(self) -> list[dict]:
        if not self.file.exists():
            return []
        return json.loads(self.file.read_text())

    def _save(self, entries: list[dict]) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.file.write_text(json.dumps(entries, indent=2))

    def start(self, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")
        log.write(f"\n=== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=full_env, start_new_session=True,
        )  # fmt: skip
        log.close()
        entries = [e for e in self._load() if e["name"] != name]
        entries.append({"name": name, "pid": proc.pid, "argv": argv})
        self._save(entries)
        self._children[name] = proc
        return proc

    def alive(self, name: str) -> bool:
        child = self._children.get(name)
        if child is not None and any(e["name"] == name and e["pid"] == child.pid for e in self._load()):
            return child.poll() is None
        for e in self._load():
            if e["name"] == name:
                return _is_ours(e)
        return False

    def names(self) -> list[str]:
        return [e["name"] for e in self._load()]

    def stop(self, name: str, timeout: float = 15) -> None:
        entries = self._load()
        child = self._children.pop(name, None)
        if not any(e["name"] == name for e in entries):
            return
        for e in entries:
            if e["name"] == name:
                if child is not None and child.pid == e["pid"]:
                    _terminate_child(child, timeout)
                else:
                    _terminate(e, timeout)
        self._save([e for e in entries if e["name"] != name])

    def stop_all(self, timeout: float = 15) -> None:
        for e in reversed(self._load()):
            self.stop(e["name"], timeout)

    def exit_status(self, name: str) -> str:
        """How a process this object started ended ("running" while it runs), for error messages."""
        child = self._children.get(name)
        if child is None:
            return "exit status unknown: not started by this process"
        code = child.poll()
        if code is None:
            return "running"
        if code < 0:
            return f"killed by signal {-code} ({signal.strsignal(-code) or 'unknown'})"
        return f"exit status {code}"

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last lines of the latest start's output (the log file keeps every start's)."""
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace")
        start = text.rfind("\n=== ")  # the marker start() writes before each start
        return "\n".join(text[start + 1 if start >= 0 else 0 :].splitlines()[-lines:])


def _is_ours(entry: dict) -> bool:
    """The pid is alive and still runs the recorded command (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{entry['pid']}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].decode(errors="replace") == entry["argv"][0]


def _terminate(entry: dict, timeout: float) -> None:
    if not _is_ours(entry):
        return
    pid = entry["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not _is_ours(entry) or _zombie(pid):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def _terminate_child(child: subprocess.Popen, timeout: float) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True

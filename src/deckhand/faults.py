"""Fault injection over real deckhand processes: SIGKILL one, bring it back, check what must hold.

    with Stack(tmp_dir, admin_token="dh_...") as stack:          # SQLite, spool channel
        kill = stack.kill(PREDICTION_SERVER)                      # SIGKILL, as an OOM kill would
        stack.restart(PREDICTION_SERVER)                          # here: wait for the agent's supervisor
        assert not stack.unexpected_processes()

A `Stack` runs the control plane (`deckhand server`, on SQLite or on `database_url`), one
agent (`deckhand agent --config`) managing one `local` environment -- which starts and
supervises the prediction server (`deckhand serve --models-dir`) and, with the spool
channel, the tracking agent -- and, with `rabbitmq=True`, a RabbitMQ broker and a
`deckhand tracking-agent` on its queue. The local platform can only spool, so in that
variant the environment has monitoring off and the agent's own environment carries
`DECKHAND_MONITORING=amqp://...`, which the prediction server it starts inherits.

`kill` SIGKILLs exactly one component's process and returns once it is gone; `restart`
starts it again (control plane, agent, RabbitMQ, the stack's tracking agent) or waits
until the agent's supervisor has (prediction server, spooling tracking agent). The
read-only checks (`leftover_files`, `package_problems`, `process_problems`,
`unexpected_processes`, `api_sweep`) return what they found wrong as sentences. Every
process binds 127.0.0.1; `close` stops what the stack started, by pid.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from deckhand.agent.platform_setup import safe_name
from deckhand.agent.platforms import read_pid_file
from deckhand.agent.testing import AgentProcess, processes_mentioning, write_agent_config
from deckhand.client import ControlPlaneClient
from deckhand.packages.container import file_sha256
from deckhand.server.testing import ServerProcess
from deckhand.testing import command_line, descendants, running, wait_until

CONTROL_PLANE = "control-plane"
AGENT = "agent"
PREDICTION_SERVER = "prediction-server"
TRACKING_AGENT = "tracking-agent"
RABBITMQ = "rabbitmq"

# The marks of work in progress in deckhand's directories: a file or directory with one of
# these names is half-written (or half-deleted) and must not outlive a convergence.
# `.reader.lock` is the spool's reader lock, not work in progress.
_KEPT_HIDDEN = {".reader.lock"}
_WIP_SUFFIXES = (".part", ".tmp")
SERVE_MARK = "deckhand.cli serve --models-dir"
TRACKER_MARK = "deckhand.cli tracking-agent"
STARTED_MARK = "started revision="  # the agent's log line once an environment runs


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: which component, its pid, and when (monotonic) it was seen gone."""

    component: str
    pid: int
    at: float


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    wait_until(lambda: not running(pid), timeout, 0.01, what=f"pid {pid} gone after SIGKILL")


class _Agent(AgentProcess):
    """The agent, with extra environment (the RabbitMQ variant's DECKHAND_MONITORING)."""

    def __init__(self, config: Path, work_dir: Path, extra_env: dict[str, str]) -> None:
        super().__init__(config, work_dir)
        self.extra_env = extra_env

    def env(self) -> dict[str, str]:
        env = super().env()
        for key in ("DECKHAND_MONITORING", "DECKHAND_URL", "DECKHAND_TOKEN"):  # only what agent.yaml says
            env.pop(key, None)
        return {**env, **self.extra_env}

    def starts(self) -> int:
        return self.output().count(STARTED_MARK)


class Stack:
    """Control plane + agent (+ RabbitMQ and a tracking agent) under `base_dir`."""

    def __init__(
        self,
        base_dir: Path,
        *,
        admin_token: str,
        database_url: str | None = None,
        rabbitmq: bool = False,
        agent_settings: dict[str, Any] | None = None,
        start_timeout: float = 90.0,
    ) -> None:
        self.base = Path(base_dir)
        self.admin_token = admin_token
        self.database_url = database_url
        self.use_rabbitmq = rabbitmq
        self.agent_settings = agent_settings or {}
        self.start_timeout = start_timeout
        self.cp = ServerProcess(
            self.base / "cp", bootstrap_token=admin_token, database_url=database_url, log_path=self.base / "cp.log"
        )
        self.broker: Any = None  # deckhand.monitoring.testing.RabbitMQBroker
        self.tracker: Any = None  # deckhand.monitoring.testing.TrackingAgentProcess (RabbitMQ variant)
        self.agent: _Agent | None = None
        self.client: ControlPlaneClient | None = None
        self.env_id = ""
        self.agent_token = ""
        self.work_dir = self.base / "agent"

    # ----- start and stop ------------------------------------------------------------------
    def start(self) -> Stack:
        self.base.mkdir(parents=True, exist_ok=True)
        if self.use_rabbitmq:
            from deckhand.monitoring.testing import RabbitMQBroker

            self.broker = RabbitMQBroker(self.base / "rabbitmq")
            self.broker.start()
        self.cp.start(self.start_timeout)
        self.client = ControlPlaneClient(self.cp.url, self.admin_token)
        env = self.client.create_environment(name="faults", platform="local", monitoringEnabled=not self.use_rabbitmq)
        self.env_id = env["id"]
        self.agent_token = self.client.create_token("faults-agent", "agent", [self.env_id])["token"]
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = write_agent_config(
            self.base / "agent.yaml",
            url=self.cp.url,
            token=self.agent_token,
            work_dir=self.work_dir,
            environments=[{"id": self.env_id}],
            **self.agent_settings,
        )
        extra = {"DECKHAND_MONITORING": self.monitoring_spec} if self.use_rabbitmq else {}
        self.agent = _Agent(config, self.work_dir, extra)
        self._start_agent()
        if self.use_rabbitmq:
            self._start_tracker()
        return self

    def _start_agent(self) -> None:
        assert self.agent is not None
        before = self.agent.starts()
        self.agent.start()
        deadline = time.monotonic() + self.start_timeout
        while self.agent.starts() <= before:
            if not self.agent.alive():
                raise RuntimeError(f"agent exited with {self.agent.process.returncode}:\n{self.agent.output()[-3000:]}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent not started after {self.start_timeout} s:\n{self.agent.output()[-3000:]}")
            time.sleep(0.02)
        # the supervised processes are up once the environment started (platform set-up waits for them)

    def _start_tracker(self) -> None:
        from deckhand.monitoring.testing import TrackingAgentProcess

        if self.tracker is None:
            self.tracker = TrackingAgentProcess(
                self.monitoring_spec, self.cp.url, self.agent_token, self.base / "tracking-agent.log"
            )
        self.tracker.start()

    def close(self) -> None:
        """Stop everything, the agent first (it stops what it supervises), then the rest."""
        try:
            if self.agent is not None:
                self.agent.stop()
            if self.tracker is not None:
                self.tracker.stop()
            if self.client is not None:
                self.client.close()
            self.cp.stop()
        finally:
            if self.broker is not None:
                self.broker.close()

    def kill_everything_left(self) -> list[int]:
        """SIGKILL whatever still mentions the stack's directory (after a failed test); the pids."""
        found = processes_mentioning(str(self.base))
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return found

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----- where things are --------------------------------------------------------------
    @property
    def monitoring_spec(self) -> str:
        assert self.broker is not None
        return str(self.broker.spec(queue="deckhand-faults"))

    @property
    def env_dir(self) -> Path:
        return self.work_dir / safe_name(self.env_id)

    @property
    def models_dir(self) -> Path:
        return self.env_dir / "deployments"

    @property
    def spool_dir(self) -> Path:
        return self.env_dir / "spool"

    @property
    def artifacts_dir(self) -> Path:
        return self.base / "cp" / "artifacts"

    @property
    def package_cache(self) -> Path:
        return self.work_dir / "packages"

    @property
    def server_pid_file(self) -> Path:
        return self.env_dir / "prediction-server.pid"

    @property
    def tracker_pid_file(self) -> Path:
        return self.env_dir / "tracking-agent.pid"

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{int((self.env_dir / 'prediction-server.port').read_text())}"

    def components(self) -> list[str]:
        found = [CONTROL_PLANE, AGENT, PREDICTION_SERVER, TRACKING_AGENT]
        return found + ([RABBITMQ] if self.use_rabbitmq else [])

    def supervised_pid(self, component: str) -> int | None:
        """The pid the agent's pid file names, if that process runs that command line."""
        entry = read_pid_file(self.server_pid_file if component == PREDICTION_SERVER else self.tracker_pid_file)
        if entry is None or command_line(entry[0]) != entry[1]:
            return None
        return entry[0]

    def pid(self, component: str) -> int | None:
        if component == CONTROL_PLANE:
            return self.cp.pid if self.cp.alive() else None
        if component == AGENT:
            return self.agent.pid if self.agent is not None and self.agent.alive() else None
        if component == RABBITMQ:
            return self.broker.pid if self.broker is not None else None
        if component == TRACKING_AGENT and self.use_rabbitmq:
            return self.tracker.pid if self.tracker is not None and self.tracker.alive() else None
        return self.supervised_pid(component)

    # ----- faults ----------------------------------------------------------------------------
    def kill(self, component: str) -> Kill:
        """SIGKILL the component's process (RabbitMQ: its whole process group); return once gone."""
        if component == CONTROL_PLANE:
            pid = self.cp.pid
            self.cp.kill()
        elif component == AGENT:
            assert self.agent is not None
            pid = self.agent.pid
            self.agent.kill()
        elif component == RABBITMQ:
            assert self.broker is not None
            pid = self.broker.kill()
            assert pid is not None, "RabbitMQ was not running"
        elif component == TRACKING_AGENT and self.use_rabbitmq:
            pid = self.tracker.pid
            self.tracker.kill()
        else:  # supervised by the agent: not our child, so wait for it to be gone (or a zombie)
            found = wait_until(lambda: self.supervised_pid(component), 30, 0.02, what=f"{component} running")
            pid = int(found)
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
        return Kill(component, pid, time.monotonic())

    def restart(self, component: str, killed: Kill | None = None, timeout: float = 60.0) -> None:
        """Bring a killed component back: start it again, or wait for the agent's supervisor."""
        if component == CONTROL_PLANE:
            self.cp.start(self.start_timeout)
        elif component == AGENT:
            self._start_agent()
        elif component == RABBITMQ:
            self.broker.start()
        elif component == TRACKING_AGENT and self.use_rabbitmq:
            self._start_tracker()
        else:
            old = killed.pid if killed else None

            def back() -> bool:
                pid = self.supervised_pid(component)
                if pid is None or pid == old:
                    return False
                if component == PREDICTION_SERVER:
                    return httpx.get(f"{self.server_url}/ping", timeout=2).status_code == 200
                return True

            wait_until(back, timeout, 0.02, what=f"{component} restarted by the agent")

    def writes_files(self, component: str) -> bool:
        """Whether `work_in_progress` can find anything of this component's."""
        return component in (AGENT, CONTROL_PLANE) or (component == PREDICTION_SERVER and not self.use_rabbitmq)

    def work_in_progress(self, component: str) -> list[Path]:
        """The temp files and dirs `component` has open right now, if it writes any: the
        agent's package downloads (`.*.part`), deployment installs and removals (`.tmp-*`,
        `.trash-*`, and temp artifacts inside a deployment dir) and its pid/port files; the
        control plane's uploads (`.upload-*.tmp`); the prediction server's spool files
        (`.*.jsonl.tmp`). A kill at such a moment cuts a write in half."""
        if component == AGENT:
            places = [self.package_cache, self.models_dir, self.env_dir]
            try:
                places += [Path(e.path) for e in os.scandir(self.models_dir) if e.is_dir()]
            except FileNotFoundError:
                pass
        elif component == CONTROL_PLANE:
            places = [self.artifacts_dir]
        elif component == PREDICTION_SERVER and not self.use_rabbitmq:
            places = [self.spool_dir]
        else:
            return []
        found = []
        for place in places:
            try:
                entries = list(os.scandir(place))
            except FileNotFoundError:
                continue
            found += [Path(e.path) for e in entries if e.name.startswith(".") and e.name not in _KEPT_HIDDEN]
        return found

    # ----- checks ------------------------------------------------------------------------------
    def leftover_files(self) -> list[Path]:
        """Work in progress left in the agent's work dir (its models dir, spool and package
        cache included) and the control plane's artifacts dir: hidden names (`.tmp-*`,
        `.trash-*`, `.upload-*.tmp`, `.<name>.tmp-*`) and `*.part` / `*.tmp` files."""
        found = []
        for root in (self.work_dir, self.artifacts_dir):
            for dirpath, dirnames, filenames in os.walk(root):
                for name in dirnames + filenames:
                    if name in _KEPT_HIDDEN:
                        continue
                    if name.startswith(".") or name.endswith(_WIP_SUFFIXES):
                        found.append(Path(dirpath) / name)
        return sorted(found)

    def package_problems(self, packages: list[dict[str, Any]]) -> list[str]:
        """Every file that holds a package against the sha256 the control plane recorded:
        the artifacts dir (exactly one `<id>.pkg` per package), the agent's cache (named by
        sha256) and every deployment directory's model artifact (its package's sha256)."""
        problems = []
        recorded = {p["id"]: p["sha256"] for p in packages}
        files = {p.name.removesuffix(".pkg"): p for p in self.artifacts_dir.glob("*.pkg")}
        for package_id, path in sorted(files.items()):
            if package_id not in recorded:
                problems.append(f"{path}: a package file the control plane has no record of")
            elif file_sha256(path) != recorded[package_id]:
                problems.append(f"{path}: sha256 {file_sha256(path)}, recorded {recorded[package_id]}")
        problems += [f"package {i}: no file in {self.artifacts_dir}" for i in sorted(set(recorded) - set(files))]
        for path in sorted(self.package_cache.glob("*.dhpkg")):
            if file_sha256(path) != path.name.removesuffix(".dhpkg"):
                problems.append(f"{path}: cached package whose sha256 is {file_sha256(path)}")
        from deckhand import deployment_dirs

        for name, found in sorted(deployment_dirs.scan(self.models_dir).items()):
            if isinstance(found, deployment_dirs.LayoutError):
                problems.append(f"deployment directory {name}: {found}")
            elif found.model_id not in recorded:
                problems.append(f"deployment directory {name}: model {found.model_id} is no package")
            elif file_sha256(found.artifact) != recorded[found.model_id]:
                problems.append(f"{found.artifact}: not the sha256 of package {found.model_id}")
        return problems

    def process_problems(self) -> list[str]:
        """Exactly one prediction server (and, spooling, one tracking agent) per environment,
        both children of the agent and named by their pid files; nothing else below the
        agent or the control plane."""
        assert self.agent is not None
        problems = []
        below = descendants(self.agent.pid)
        lines = {pid: command_line(pid) for pid in below}
        expected = [(PREDICTION_SERVER, SERVE_MARK, self.server_pid_file)]
        if not self.use_rabbitmq:
            expected.append((TRACKING_AGENT, TRACKER_MARK, self.tracker_pid_file))
        known = set()
        for component, mark, pid_file in expected:
            pids = sorted(pid for pid, line in lines.items() if mark in line)
            everywhere = sorted(p for p in processes_mentioning(str(self.env_dir)) if mark in command_line(p))
            entry = read_pid_file(pid_file)
            if len(pids) != 1:
                problems.append(f"{len(pids)} {component} processes below the agent (pid {self.agent.pid}): {pids}")
            elif entry is None or entry[0] != pids[0] or lines[pids[0]] != entry[1]:
                problems.append(f"{pid_file} says {entry}, but the agent runs {component} pid {pids[0]}")
            if everywhere != pids:
                problems.append(f"{component} processes for {self.env_dir}: {everywhere}; the agent's: {pids}")
            known.update(pids)
        problems += [f"unexpected child of the agent: {pid} {lines[pid][:200]}" for pid in sorted(set(lines) - known)]
        problems += [f"unexpected child of the control plane: {pid}" for pid in descendants(self.cp.pid)]
        return problems

    def our_pids(self) -> set[int]:
        pids: set[int] = set()
        for process in (self.cp, self.agent, self.tracker):
            if process is not None and process.alive():
                pids.add(process.pid)
                pids.update(descendants(process.pid))
        if self.broker is not None and self.broker.pid is not None:
            pids.add(self.broker.pid)
            pids.update(descendants(self.broker.pid))
        return pids

    def unexpected_processes(self) -> list[str]:
        """Processes whose command line names the stack's directory but that are neither one
        of ours nor below one of ours: orphans of a killed parent that nobody stopped."""
        ours = self.our_pids() | {os.getpid()}
        return [
            f"{pid}: {command_line(pid)[:300]}"
            for pid in processes_mentioning(str(self.base))
            if pid not in ours and running(pid)
        ]

    def api_sweep(self, deployment_ids: list[str]) -> tuple[int, list[str]]:
        """GET every API route (from the OpenAPI document) for every object, plus the UI
        pages; (requests made, the 5xx answers). `deployment_ids` may include deleted ones:
        those must answer 404, not fail."""
        assert self.client is not None
        from deckhand.server.ui.router import COOKIE_NAME

        headers = {"Authorization": f"Bearer {self.admin_token}"}
        problems: list[str] = []
        count = 0
        with httpx.Client(base_url=self.cp.url, headers=headers, timeout=30) as http:
            spec = http.get("/openapi.json").json()
            objects = {
                "model-packages": [p["id"] for p in http.get("/api/v1/model-packages").json()],
                "environments": [e["id"] for e in http.get("/api/v1/environments").json()],
                "deployments": list(dict.fromkeys(deployment_ids)),
                "notification-channels": [c["id"] for c in http.get("/api/v1/notification-channels").json()],
                "notification-policies": [p["id"] for p in http.get("/api/v1/notification-policies").json()],
            }
            urls = []
            for path, operations in spec["paths"].items():
                if "get" not in operations:
                    continue
                if "{" not in path:
                    urls.append(path)
                    continue
                kind = next((k for k in objects if f"/{k}/" in path), None)
                assert kind is not None, f"api_sweep: no objects for {path}; add its kind to `objects`"
                urls += [path.split("{")[0] + ref + path.split("}", 1)[1] for ref in objects[kind]]
            urls = [u + ("?timeout=0" if u.endswith("/desired-state") else "") for u in urls]
            urls += ["/ui/environments", "/ui/deployments", "/ui/notifications"]
            urls += [f"/ui/deployments/{d}" for d in objects["deployments"]]
            http.cookies.set(COOKIE_NAME, self.admin_token, path="/ui")
            for url in urls:
                count += 1
                response = http.get(url)
                if response.status_code >= 500:
                    problems.append(f"GET {url}: {response.status_code} {response.text[:300]}")
        return count, problems

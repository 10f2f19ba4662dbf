"""Run a real control plane for tests and demos: in a thread, or as a `deckhand server` process.

    with ThreadedServer(ServerSettings(data_dir=tmp, bootstrap_token="t")) as server:
        client = ControlPlaneClient(server.url, "t")

Both bind 127.0.0.1 (or the `host` given) on a free port and stop what they started.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, TypeVar

import httpx

from deckhand.server.settings import BOOTSTRAP_TOKEN_ENV, ServerSettings
from deckhand.testing import DECKHAND, ChildProcess, GiveUp, free_port, wait_until

__all__ = ["ReplicaProxy", "ServerProcess", "ThreadedServer", "wait_healthy"]


def wait_healthy(url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until the control plane at `url` answers /healthz (and `process`, if given, runs)."""

    def healthy() -> bool:
        if process is not None and process.poll() is not None:
            raise GiveUp(f"control plane exited with code {process.returncode} while starting")
        return httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200

    wait_until(healthy, timeout, what=f"the control plane at {url} to answer /healthz")


class ThreadedServer:
    """uvicorn serving `create_app(settings)` in a background thread of this process."""

    def __init__(self, settings: ServerSettings) -> None:
        import uvicorn

        from deckhand.server.app import create_app

        if not settings.port:
            settings.port = free_port(settings.host)
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="deckhand-server", daemon=True)

    @classmethod
    def on(cls, data_dir: Path, admin_token: str, **settings: Any) -> ThreadedServer:
        """A server keeping its data in `data_dir`, with `admin_token` as its bootstrap token
        and any other ServerSettings field as a keyword (database_url=..., host=...)."""
        return cls(ServerSettings(data_dir=data_dir, bootstrap_token=admin_token, **settings))

    @property
    def url(self) -> str:
        return self.settings.url

    def start(self) -> ThreadedServer:
        self._thread.start()
        wait_healthy(self.url)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_P = TypeVar("_P", "ServerProcess", "ReplicaProxy")


def _started_healthy(child: _P, timeout: float) -> _P:
    """Start `child` and wait until its URL answers /healthz; stopped again if it does not."""
    ChildProcess.start(child)
    try:
        wait_healthy(child.url, timeout, child.process)
    except BaseException:
        child.stop()
        raise
    return child


class ServerProcess(ChildProcess):
    """`deckhand server` as a child process; its stdout/stderr go to `log_path`."""

    def __init__(
        self,
        data_dir: Path,
        bootstrap_token: str | None = None,
        database_url: str | None = None,
        port: int | None = None,
        log_path: Path | None = None,
        extra_args: list[str] | None = None,
        host: str = "127.0.0.1",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """`host`: the address to listen on; another local one (say the Docker bridge's, so
        containers reach it) only when needed. `extra_env`: say the AWS_* variables of an S3
        artifact store."""
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args or []
        self.extra_env = extra_env or {}
        self.host = host
        self.port = port or free_port(host)
        super().__init__(log_path or self.data_dir.parent / f"server-{self.port}.log")
        self.url = f"http://{host}:{self.port}"
        self.bootstrap_token = bootstrap_token
        self.database_url = database_url

    def argv(self) -> list[str]:
        cmd = [*DECKHAND, "server", "--data-dir", str(self.data_dir), "--host", self.host, "--port", str(self.port)]
        return cmd + (["--database-url", self.database_url] if self.database_url else []) + self.extra_args

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop(BOOTSTRAP_TOKEN_ENV, None)
        env.update(self.extra_env)
        if self.bootstrap_token:
            env[BOOTSTRAP_TOKEN_ENV] = self.bootstrap_token
        return env

    def start(self, timeout: float = 60.0) -> ServerProcess:
        return _started_healthy(self, timeout)


# The HAProxy configuration the docs give for replicas; a test runs it with its own addresses.
HAPROXY_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "replicas" / "haproxy.cfg"


def haproxy_config(example: str, bind: str, backends: list[str], stats_socket: Path | None = None) -> str:
    """`example` with its `bind` address and `server` lines replaced (and a stats socket)."""
    lines: list[str] = []
    for line in example.splitlines():
        words = line.split()
        if words == ["global"] and stats_socket is not None:
            lines += [line, f"  stats socket {stats_socket} mode 600 level user"]
        elif words[:1] == ["bind"]:
            lines.append(f"  bind {bind}")
        elif words[:1] == ["server"]:
            if not any(w.split()[:1] == ["server"] for w in lines):
                lines += [f"  server r{i} {b.removeprefix('http://')} check" for i, b in enumerate(backends)]
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


class ReplicaProxy(ChildProcess):
    """HAProxy (Debian's `haproxy`) in front of control-plane replicas, in the foreground,
    configured as examples/replicas/haproxy.cfg."""

    def __init__(self, directory: Path, backends: list[str], host: str = "127.0.0.1") -> None:
        super().__init__(Path(directory) / "haproxy.log")
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.config = Path(directory) / "haproxy.cfg"
        self.socket = Path(directory) / "haproxy.sock"
        self.config.parent.mkdir(parents=True, exist_ok=True)
        example = HAPROXY_EXAMPLE.read_text()
        self.config.write_text(haproxy_config(example, f"{host}:{self.port}", backends, self.socket))

    def argv(self) -> list[str]:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        return [binary, "-db", "-f", str(self.config)]

    def requests_per_server(self) -> list[int]:
        """HTTP requests each replica got through the proxy (its stats socket's `req_tot`)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        counts = []
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "replicas" and row.get("svname", "").startswith("r"):
                counts.append(int(row.get("req_tot") or row.get("stot") or 0))
        return counts

    def start(self, timeout: float = 20.0) -> ReplicaProxy:
        return _started_healthy(self, timeout)

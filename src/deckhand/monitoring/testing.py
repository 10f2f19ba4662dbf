"""A throwaway RabbitMQ broker for tests and benches: Debian's rabbitmq-server on loopback.

    with RabbitMQBroker(tmp_dir) as broker:
        spec = broker.spec(queue="q")        # amqp://guest:guest@127.0.0.1:PORT/%2F?queue=q
        broker.stop(); broker.start()        # same data dir and ports: durable queues survive

Its own node name, AMQP, distribution and epmd ports, data and log dirs and Erlang
cookie (HOME), so it never touches a system broker. Stops what it started, by pid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from deckhand.testing import ChildProcess, GiveUp, free_port, wait_until

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")


def rabbitmq_available() -> str | None:
    """None when a broker can be started here, else why not."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        return "Debian's rabbitmq-server is not installed (scripts/setup/60-rabbitmq.sh installs it)"
    return None


class RabbitMQBroker:
    def __init__(self, base_dir: Path, start_timeout: float = 90.0) -> None:
        self.base_dir = Path(base_dir)
        self.start_timeout = start_timeout
        self.node = f"dh{secrets.token_hex(4)}@localhost"
        self.amqp_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.home = self.base_dir / "home"
        self.log_file = self.base_dir / "broker.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    def spec(self, queue: str = "deckhand-monitoring") -> str:
        return f"{self.url}?queue={queue}"

    def env(self) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "enabled_plugins").write_text("[].\n")
        (self.base_dir / "rabbitmq-env.conf").write_text("")
        env = dict(os.environ)
        env.update(
            HOME=str(self.home),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            ERL_EPMD_PORT=str(self.epmd_port),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_MNESIA_BASE=str(self.base_dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base_dir / "log"),
            RABBITMQ_PID_FILE=str(self.base_dir / "rabbit.pid"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base_dir / "enabled_plugins"),
            RABBITMQ_CONF_ENV_FILE=str(self.base_dir / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.base_dir / "rabbitmq"),  # absent: defaults
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base_dir / "advanced.config"),
            RABBITMQ_LOGS="-",
            # no scheduler busy-waiting: the machine is shared with the code under test
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none",
        )
        return env

    def start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        self._proc = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.env(),
            cwd=self.base_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_ready()

    def wait_ready(self) -> None:
        import pika

        def ready() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise GiveUp(f"rabbitmq-server exited with {self._proc.returncode}; see {self.log_file}")
            params = pika.URLParameters(self.url)
            params.connection_attempts = 1
            params.socket_timeout = 2
            pika.BlockingConnection(params).close()
            return True

        wait_until(ready, self.start_timeout, 0.5, what=f"rabbitmq on port {self.amqp_port} (see {self.log_file})")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self) -> None:
        """Stop the broker (rabbitmqctl stop, else SIGTERM/SIGKILL of its process group)."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = None
            return
        try:
            subprocess.run(
                [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, "stop"],
                env=self.env(),
                capture_output=True,
                timeout=60,
            )
        except subprocess.TimeoutExpired:
            pass
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
        self._proc = None

    def kill(self) -> int | None:
        """SIGKILL the broker's whole process group (as a crash would); its pid, once reaped."""
        if self._proc is None:
            return None
        pid = self._proc.pid
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait(10)
        self._proc = None
        return pid

    def close(self) -> None:
        self.stop()
        epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
        if os.path.exists(epmd):
            subprocess.run([epmd, "-port", str(self.epmd_port), "-kill"], capture_output=True, timeout=10)

    def __enter__(self) -> RabbitMQBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class TrackingAgentProcess(ChildProcess):
    """`deckhand tracking-agent` as a child process (log to a file); stop or kill it by pid."""

    def __init__(
        self,
        channel: str,
        server_url: str,
        token: str,
        log_path: Path,
        *,
        batch_size: int = 50_000,
        flush_interval: float = 0.2,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(log_path)
        self._argv = [
            sys.executable, "-m", "deckhand.cli", "tracking-agent",
            "--channel", channel, "--server", server_url,
            "--batch-size", str(batch_size), "--flush-interval", str(flush_interval),
        ]  # fmt: skip
        self.token = token
        self.extra_env = extra_env or {}

    def argv(self) -> list[str]:
        return self._argv

    def env(self) -> dict[str, str]:
        # the token goes in the environment, not on the command line (visible in ps)
        return {**super().env(), "DECKHAND_TOKEN": self.token, **self.extra_env}

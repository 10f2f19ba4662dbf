"""A real S3-compatible object store for the tests that need one (marker `s3`): SeaweedFS's
`weed server -s3`, built from the Go module proxy by scripts/setup/55-s3-testenv.sh into the
tools cache, started once per session on 127.0.0.1 with its data in a temp dir. Loaded for
every suite by tests/conftest.py.

    def test_x(s3_server: S3Server) -> None:
        url = s3_server.new_bucket()          # s3://deckhand-1a2b3c4d/artifacts, a fresh bucket
        env = {**os.environ, **s3_server.env()}  # AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...
        client = s3_server.client()           # a boto3 S3 client on it
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deckhand.testing import free_port

REPO = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = "scripts/setup/55-s3-testenv.sh"
REGION = "us-east-1"
START_TIMEOUT = 60.0
# Every listener of `weed server -s3` (the gRPC ones default to HTTP port + 10000: set too).
PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
)  # fmt: skip


def _distinct_ports(flags: tuple[str, ...]) -> dict[str, int]:
    ports: set[int] = set()
    while len(ports) < len(flags):
        ports.add(free_port())
    return dict(zip(flags, sorted(ports), strict=True))


def weed_binary() -> Path:
    """The cached `weed`, or a skip naming the set-up script that builds it."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from k8s_testenv.build import SEAWEEDFS
    finally:
        sys.path.remove(str(REPO / "scripts"))
    if not SEAWEEDFS.complete:
        pytest.skip(f"SeaweedFS (weed) is not built in {SEAWEEDFS.dir}: run {SETUP_SCRIPT}")
    return SEAWEEDFS.bin("weed")


class S3Server:
    """`weed server -s3` with one identity allowed everything; every port its own free one."""

    def __init__(self, weed: Path) -> None:
        self.weed = weed
        self.base = Path(tempfile.mkdtemp(prefix="deckhand-s3-"))
        self.access_key = "dhtest" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.region = REGION
        self.ports = _distinct_ports(PORT_FLAGS)
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        identities = {
            "identities": [
                {
                    "name": "deckhand-tests",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.base / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        (self.base / "data").mkdir()
        port_flags = [f"-{flag}={port}" for flag, port in self.ports.items()]
        command = [
            str(self.weed), "server", f"-dir={self.base / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *port_flags, "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            # Many buckets (one a test), each its own collection of volumes: small, and plenty.
            "-master.volumeSizeLimitMB=512", "-volume.max=1000",
        ]  # fmt: skip
        with open(self.base / "weed.log", "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client()
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                client.list_buckets()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"SeaweedFS S3 not ready in {START_TIMEOUT} s ({exc}):\n{self.log_tail()}"
                    ) from None
                time.sleep(0.3)

    def log_tail(self, lines: int = 30) -> str:
        path = self.base / "weed.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # weed serves its gRPC on Unix sockets named by port in /tmp too, and leaves them.
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- for tests -----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (boto3, deckhand server) here."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, **overrides: str) -> Any:
        import boto3
        from botocore.config import Config

        credentials = {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key, **overrides}
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
            **credentials,
        )

    def new_bucket(self, prefix: str = "artifacts") -> str:
        """A fresh, empty bucket; returns `s3://<bucket>/<prefix>` (no prefix if empty)."""
        name = f"deckhand-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}/{prefix}" if prefix else f"s3://{name}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server(weed_binary())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """`s3://<fresh bucket>/artifacts`."""
    return s3_server.new_bucket()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS variables of `s3_server` set in this process for the test (and returned)."""
    env = s3_server.env()
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env

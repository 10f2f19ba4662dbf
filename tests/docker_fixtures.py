"""Shared fixtures for every suite that needs deckhand's own Docker engine (tests/images,
tests/plugins/docker): ONE engine per session, each image built at most once per session.

The engine is the one scripts/docker-engine runs (its own socket and data root). If it
already answers (CI starts it before pytest), the tests use it and leave it running;
otherwise the session starts it and stops it at the end (see `engine_host` for how
concurrent sessions share it). Images are built with the same `make -C images <name>` a
person runs, so what passes here is what the docs say. Containers and networks the tests
create carry the `dh-test-` prefix and are removed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import deckhand
from deckhand.testing import wait_until

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "scripts" / "docker-engine"
VERSION = deckhand.__version__

# A cold build of everything (debootstrap, wheelhouse, Traefik's Go build) takes minutes
# on a busy 2-core machine; a cached one takes seconds.
BUILD_TIMEOUT_S = 1800


@dataclass
class Engine:
    """The Docker engine under test: `docker` CLI calls bound to its socket."""

    docker_host: str
    created: list[tuple[str, str]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.docker_host}

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        proc = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout.strip()

    def make(self, target: str) -> float:
        """`make -C images TARGET`; returns how long it took (s)."""
        start = time.monotonic()
        proc = subprocess.run(
            ["make", "-s", "-C", str(ROOT / "images"), target],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
        if proc.returncode != 0:
            raise AssertionError(f"make -C images {target} failed:\n{proc.stdout}\n{proc.stderr}")
        return time.monotonic() - start

    def name(self, what: str) -> str:
        return f"dh-test-{what}-{secrets.token_hex(3)}"

    def run(self, image: str, *args: str, name: str, options: tuple[str, ...] = ()) -> str:
        """Start a detached container (removed at teardown)."""
        self.created.append(("container", name))
        self.docker("run", "-d", "--name", name, *options, image, *args)
        return name

    def network(self, what: str) -> str:
        name = self.name(what)
        self.created.append(("network", name))
        self.docker("network", "create", name)
        return name

    def host_port(self, container: str, port: int) -> int:
        out = self.docker("port", container, f"{port}/tcp")
        return int(out.splitlines()[0].rsplit(":", 1)[1])

    def inspect(self, obj: str) -> dict:
        return json.loads(self.docker("inspect", obj))[0]

    def cleanup(self) -> None:
        for kind, name in reversed(self.created):
            if kind == "container":
                self.docker("rm", "-f", "-v", name, check=False)
            else:
                self.docker("network", "rm", name, check=False)
        self.created.clear()


def _engine_status() -> str | None:
    proc = subprocess.run([str(ENGINE), "status"], capture_output=True, text=True)
    if proc.returncode == 0:
        return proc.stdout.strip().split("=", 1)[1]
    return None


def _lease_dir() -> Path:
    return Path(os.environ.get("DECKHAND_DOCKER_RUN_DIR", "/run/deckhand-docker")) / "test-leases"


STOP_WHEN_IDLE = "stop-when-idle"


def _live_leases(directory: Path) -> list[int]:
    live = []
    for lease in directory.glob("[0-9]*"):
        try:
            pid = int(lease.name)
            os.kill(pid, 0)
            live.append(pid)
        except (ValueError, ProcessLookupError):
            lease.unlink(missing_ok=True)
        except PermissionError:
            live.append(int(lease.name))
    return live


@pytest.fixture(scope="session")
def engine_host() -> Iterator[str]:
    """DOCKER_HOST of deckhand's engine, shared by every suite of the session.

    Who stops it: if the engine already answered when the session began (CI starts it
    before pytest; a developer may keep one running), nobody here does. If this session
    started it, it stops it at the end — or, if another test session still holds a lease (a
    file named by its PID in <run dir>/test-leases/), leaves a `stop-when-idle` mark so the
    last session to finish stops it. DECKHAND_KEEP_DOCKER_ENGINE=1 keeps it running.
    """
    if shutil.which("dockerd") is None and _engine_status() is None:
        pytest.fail("dockerd is not installed: run scripts/setup/40-docker.sh (or ./scripts/test)")
    started = False
    host = _engine_status()
    if host is None:
        if os.geteuid() != 0:
            pytest.skip("deckhand's Docker engine is not running and starting it needs root")
        proc = subprocess.run([str(ENGINE), "start"], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            pytest.fail(f"scripts/docker-engine start failed:\n{proc.stdout}\n{proc.stderr}")
        host = proc.stdout.strip().splitlines()[-1].split("=", 1)[1]
        started = True
    leases = _lease_dir()
    lease = leases / str(os.getpid())
    try:
        leases.mkdir(parents=True, exist_ok=True)
        lease.touch()
        if started:  # a mark left by a session that died: the engine was down, so it is stale
            (leases / STOP_WHEN_IDLE).unlink(missing_ok=True)
    except OSError:
        lease = None  # type: ignore[assignment]
    try:
        yield host
    finally:
        if lease is not None:
            lease.unlink(missing_ok=True)
        others = _live_leases(leases) if leases.is_dir() else []
        handoff = leases / STOP_WHEN_IDLE
        owner = started or handoff.exists()
        if owner and os.environ.get("DECKHAND_KEEP_DOCKER_ENGINE") != "1":
            if others:
                handoff.touch()  # the last session to leave stops it
            else:
                handoff.unlink(missing_ok=True)
                subprocess.run([str(ENGINE), "stop"], capture_output=True, text=True, timeout=120)


@pytest.fixture
def engine(engine_host: str) -> Iterator[Engine]:
    eng = Engine(engine_host)
    try:
        yield eng
    finally:
        eng.cleanup()


@pytest.fixture(scope="session")
def built(engine_host: str) -> Iterator[dict[str, float]]:
    """Image name -> seconds its `make` took, filled by `build_image` (once per session)."""
    yield {}


@pytest.fixture(scope="session")
def build_image(engine_host: str, built: dict[str, float]):
    """Session-wide `build_image("pps")`: makes sure deckhand-pps:<version> exists (running
    `make -C images pps` at most once per session) and returns its reference."""
    builder = Engine(engine_host)

    def ensure(name: str, allow_existing: bool = False) -> str:
        """allow_existing: if the build fails but an image of this version exists (say the
        wheelhouse cannot be refreshed right now), warn and use it — for suites that test
        what runs in the image, not the build."""
        ref = f"deckhand-{name}:{VERSION}"
        if name not in built:
            try:
                built[name] = builder.make(name)
            except AssertionError as exc:
                if not allow_existing or not builder.docker("images", "-q", ref, check=False):
                    raise
                warnings.warn(f"make -C images {name} failed; using the existing {ref}: {exc}", stacklevel=2)
                built[name] = 0.0
        return ref

    return ensure


@pytest.fixture
def image(build_image):
    """`image("pps")`: as `build_image`, for function-scoped tests."""
    return build_image


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(url: str, timeout: float, status: int = 200) -> float:
    """Polls URL until it answers `status`; returns the seconds it took."""
    start = time.monotonic()

    def answered() -> tuple[int, bytes] | None:
        code, body = http("GET", url, timeout=2)
        if code != status:
            raise AssertionError(f"answered {code}: {body[:200]!r}")  # reported as the last value
        return code, body

    wait_until(answered, timeout, 0.1, what=f"{url} to answer {status}")
    return time.monotonic() - start

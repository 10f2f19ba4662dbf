"""Three control-plane replicas on one PostgreSQL and one S3 bucket (SeaweedFS), behind a
real HAProxy configured as examples/replicas/haproxy.cfg. While a workload of package
uploads, creates, replaces and monitoring batches runs through the proxy, and an agent
follows two environments through it, replicas are SIGKILLed at random moments (seeded:
DECKHAND_FAULT_SEED replays a run) and brought back.

The client knows only what was acknowledged. A call cut off by a kill (a 502 from the
proxy, a dropped connection) may or may not have happened; the proxy re-sends only requests
no replica has seen (`retry-on conn-failure`), so none happens twice. Afterwards:

- every acknowledged package is listed and downloads whole, its sha256 checked, from each
  replica; every listed package does (none is half-written);
- every acknowledged deployment exists once, with the model last acknowledged for it (or
  one of the replacements cut off after it);
- every monitoring batch, re-sent until acknowledged as the tracking agent does, is
  counted exactly once;
- the agent converges: each deployment observed ready with its desired model;
- no replica ever answered a 5xx of its own.
"""

from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from tests.postgres_fixtures import PostgresCluster
from tests.s3_fixtures import S3Server

from deckhand.agent.testing import AgentProcess, write_agent_config
from deckhand.client import ControlPlaneClient, ControlPlaneError
from deckhand.monitoring.records import stats_record
from deckhand.packages.container import file_sha256
from deckhand.server.testing import ReplicaProxy, ServerProcess
from deckhand.testing import wait_until

from .conftest import replay_hint
from .rounds import padded_package, slow_upload

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.s3, pytest.mark.timeout(600)]

ADMIN = "dh_replica-kills-admin-token-0123456789"
REPLICAS = 3
KILLS = 8
WORKLOAD_SECONDS = 40.0  # at least; until the last kill's replica is back
KILLER_TIMEOUT = 300.0
PADDING_BYTES = 1 << 20  # each package its own sha256
UPLOAD_SECONDS = 0.8  # each upload streams this long: a kill often comes mid-body
# uploads in flight at once: with one, a kill found none on its replica about 3 times in 4,
# and all 8 kills missed in about 1 run in 10; with 3, about 1 in 10,000
UPLOADERS = 3
CONVERGE_TIMEOUT = 90.0
MAX_DEPLOYMENTS = 60  # then only replaces
# What a client sees when the replica holding its request died: the outcome is unknown.
CUT_OFF = {0, 502, 503, 504}
T = TypeVar("T")


@dataclass
class Deployment:
    name: str
    environment_id: str
    id: str
    model: str  # the last model acknowledged
    maybe: set[str] = field(default_factory=set)  # replacements cut off after it


@dataclass
class Ledger:
    """What the workload was told, and what it could not know."""

    packages: dict[str, str] = field(default_factory=dict)  # acknowledged id -> sha256
    deployments: dict[str, Deployment] = field(default_factory=dict)  # by name
    counted: Counter[str] = field(default_factory=Counter)  # monitoring requests acknowledged per deployment
    acknowledged: Counter[str] = field(default_factory=Counter)
    cut_off: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # answers no kill explains
    lock: threading.Lock = field(default_factory=threading.Lock)


class Cluster:
    """The replicas, the proxy, and the killer."""

    def __init__(self, root: Path, database_url: str, store_args: list[str], store_env: dict[str, str]) -> None:
        self.replicas = [
            ServerProcess(
                root / f"r{i}",
                ADMIN,
                database_url=database_url,
                extra_args=[*store_args, "--long-poll-recheck-seconds", "5"],
                extra_env=store_env,
            )
            for i in range(REPLICAS)
        ]
        self.proxy = ReplicaProxy(root / "proxy", [r.url for r in self.replicas])
        self.kills: list[tuple[float, int]] = []  # (seconds into the workload, replica)

    def start(self) -> Cluster:
        for replica in self.replicas:
            replica.start()
        self.proxy.start()
        return self

    def stop(self) -> None:
        self.proxy.stop()
        for replica in self.replicas:
            replica.stop()

    def kill_at_random(self, rng: random.Random, stop: threading.Event, started: float) -> None:
        """SIGKILL one replica at a time, at a random moment, and bring it back after a
        random pause: the others carry the workload meanwhile."""
        for _ in range(KILLS):
            if stop.wait(rng.uniform(1.5, 4.0)):
                return
            index = rng.randrange(REPLICAS)
            self.replicas[index].kill()
            self.kills.append((round(time.monotonic() - started, 1), index))
            if stop.wait(rng.uniform(0.2, 2.0)):
                pass  # bring it back even so: the checks need every replica
            self.replicas[index].start()


@pytest.fixture
def shared_store(s3_server: S3Server) -> tuple[list[str], dict[str, str]]:
    """One S3 bucket (a real SeaweedFS on loopback) that every replica keeps packages in."""
    return ["--artifact-store", s3_server.new_bucket()], s3_server.env()


@pytest.fixture
def cluster(
    tmp_path: Path, postgres_cluster: PostgresCluster, shared_store: tuple[list[str], dict[str, str]]
) -> Iterator[Cluster]:
    store_args, store_env = shared_store
    running = Cluster(tmp_path / "cluster", postgres_cluster.create_database(), store_args, store_env).start()
    try:
        yield running
    finally:
        running.stop()


class Workload:
    """The admin's calls and the monitoring sender, through the proxy, recording outcomes."""

    def __init__(self, url: str, rng: random.Random, ledger: Ledger, packages_dir: Path, source: Path) -> None:
        self.admin = ControlPlaneClient(url, ADMIN, timeout=20)
        self.rng = rng
        self.ledger = ledger
        self.packages_dir = packages_dir
        self.source = source
        self.environments: list[str] = []

    def call(self, kind: str, fn: Callable[[], T]) -> T | None:
        """`fn()`'s answer if acknowledged; None if cut off by a kill; anything else is an error."""
        try:
            result = fn()
        except httpx.TransportError:  # a slow upload's connection dropped
            with self.ledger.lock:
                self.ledger.cut_off[kind] += 1
            return None
        except ControlPlaneError as exc:
            with self.ledger.lock:
                if exc.status_code in CUT_OFF:
                    self.ledger.cut_off[kind] += 1
                else:
                    self.ledger.errors.append(f"{kind}: {exc.status_code} {exc.message}")
            return None
        with self.ledger.lock:
            self.ledger.acknowledged[kind] += 1
        return result

    def upload(self, name: str, rng: random.Random, seconds: float) -> None:
        """A package streamed over `seconds` (a slow client: a kill may come mid-body)."""
        path = padded_package(self.source, self.packages_dir / f"{name}.dhpkg", rng, PADDING_BYTES)
        package = self.call("upload", lambda: slow_upload(self.admin.base_url, ADMIN, path, seconds))
        if package is not None:
            with self.ledger.lock:
                self.ledger.packages[package["id"]] = package["sha256"]

    def run_uploads(self, stop: threading.Event, rng: random.Random, uploader: int) -> None:
        number = 0
        while not stop.is_set():
            number += 1
            self.upload(f"u{uploader}-{number}", rng, UPLOAD_SECONDS)

    def create(self, number: int) -> None:
        """Until the outcome is known: a create cut off is sent again, and a 409 (the name is
        taken) means the first one was made."""
        name, env_id = f"d{number}", self.rng.choice(self.environments)
        model = self.rng.choice(self._packages())
        while True:
            try:
                made = self.admin.create_deployment(name, env_id, model)
            except ControlPlaneError as exc:
                if exc.status_code in CUT_OFF:
                    self.ledger.cut_off["create"] += 1
                    time.sleep(0.2)
                    continue
                if exc.status_code != 409:
                    self.ledger.errors.append(f"create {name}: {exc.status_code} {exc.message}")
                    return
                made = next(d for d in self.admin.list_deployments(env_id) if d["name"] == name)
            with self.ledger.lock:
                self.ledger.acknowledged["create"] += 1
                self.ledger.deployments[name] = Deployment(name, env_id, made["id"], model)
            return

    def replace(self) -> None:
        deployment = self.ledger.deployments[self.rng.choice(sorted(self.ledger.deployments))]
        model = self.rng.choice([p for p in self._packages() if p != deployment.model])
        if self.call("replace", lambda: self.admin.replace_model(deployment.id, model, reason="other")) is None:
            deployment.maybe.add(model)
        else:
            deployment.model, deployment.maybe = model, set()

    def _packages(self) -> list[str]:
        with self.ledger.lock:
            return sorted(self.ledger.packages)

    def run_admin(self, stop: threading.Event) -> None:
        """Creates and replaces, one at a time (the uploader adds packages meanwhile)."""
        number = 0
        while not stop.is_set():
            number += 1
            count = len(self.ledger.deployments)
            if count == 0 or (count < MAX_DEPLOYMENTS and self.rng.random() < 0.4):
                self.create(number)
            else:
                self.replace()

    def run_monitoring(self, stop: threading.Event, drained: threading.Event, rng: random.Random) -> None:
        """Batches of a few requests for acknowledged deployments, each re-sent under its
        batch id until acknowledged: the tracking agent's promise."""
        sender = ControlPlaneClient(self.admin.base_url, ADMIN, timeout=20)
        while not stop.is_set():
            with self.ledger.lock:
                deployments = sorted(self.ledger.deployments.values(), key=lambda d: d.name)
            if not deployments:
                time.sleep(0.1)
                continue
            chosen = rng.sample(deployments, min(3, len(deployments)))
            records = [stats_record(d.id, d.model, 1, 5.0) for d in chosen for _ in range(rng.randint(1, 4))]
            send = functools.partial(sender.post_monitoring_batch, f"batch-{uuid.uuid4().hex}", records)
            while self.call("monitoring", send) is None:
                time.sleep(0.2)  # re-sent even after the workload ends: it was promised
            with self.ledger.lock:
                for record in records:
                    self.ledger.counted[record["deploymentId"]] += 1
            time.sleep(0.05)
        sender.close()
        drained.set()


def _check_packages(cluster: Cluster, ledger: Ledger, tmp_path: Path) -> None:
    listed = {p["id"]: p["sha256"] for p in ControlPlaneClient(cluster.proxy.url, ADMIN).list_packages()}
    missing = sorted(set(ledger.packages) - set(listed))
    assert not missing, f"acknowledged packages lost: {missing}"
    for number, (package_id, sha256) in enumerate(sorted(listed.items())):
        assert ledger.packages.get(package_id, sha256) == sha256
        replica = cluster.replicas[number % REPLICAS]  # each replica serves what any received
        # download_package checks the bytes against the X-Checksum-Sha256 header, and we
        # check the header against what the upload was told
        copy = ControlPlaneClient(replica.url, ADMIN).download_package(package_id, tmp_path / "copy.dhpkg")
        assert file_sha256(copy) == sha256, f"{package_id} from {replica.url}"


def _check_deployments(cluster: Cluster, ledger: Ledger) -> dict[str, dict[str, Any]]:
    admin = ControlPlaneClient(cluster.proxy.url, ADMIN)
    found = {d["id"]: d for d in admin.list_deployments()}
    names = Counter(d["name"] for d in found.values())
    assert not [n for n, c in names.items() if c > 1], f"deployments made twice: {names}"
    for deployment in ledger.deployments.values():
        assert deployment.id in found, f"acknowledged deployment {deployment.name} lost"
        model = found[deployment.id]["modelPackageId"]
        assert model in {deployment.model, *deployment.maybe}, (
            f"{deployment.name} runs {model}, acknowledged {deployment.model} (cut off: {deployment.maybe})"
        )
    return found


def _check_monitoring(cluster: Cluster, ledger: Ledger) -> None:
    admin = ControlPlaneClient(cluster.proxy.url, ADMIN)
    for dep_id, expected in ledger.counted.items():
        totals = admin.service_health(dep_id)["totals"]
        assert totals["requests"] == expected, f"{dep_id}: counted {totals['requests']}, acknowledged {expected}"


def _converged(admin: ControlPlaneClient, deployments: dict[str, dict[str, Any]]) -> bool:
    for dep_id, desired in deployments.items():
        observed = admin.get_deployment(dep_id).get("observed") or {}
        if observed.get("state") != "ready" or observed.get("modelId") != desired["modelPackageId"]:
            return False
    return True


def test_replicas_killed_at_random_lose_nothing_acknowledged(
    cluster: Cluster, tmp_path: Path, demo_package: Path, fault_seed: int
) -> None:
    rng = random.Random(f"{fault_seed}:replicas")
    ledger = Ledger()
    workload = Workload(cluster.proxy.url, rng, ledger, tmp_path / "packages", demo_package)
    admin = workload.admin
    environments = [admin.create_environment(name=f"env{i}", platform="test")["id"] for i in range(2)]
    workload.environments = environments
    for name in ("first", "second"):  # before the kills: something to create deployments of
        workload.upload(name, rng, 0)
    token = admin.create_token("replica-agent", "agent", environments)["token"]
    work = tmp_path / "agent"
    work.mkdir()
    config = write_agent_config(
        tmp_path / "agent.yaml",
        url=cluster.proxy.url,
        token=token,
        work_dir=work,
        environments=[{"id": e} for e in environments],
    )
    stop, drained = threading.Event(), threading.Event()
    started = time.monotonic()
    with AgentProcess(config, work):
        threads = [
            # the killer first: its own generator, so its draws replay whatever the others do
            threading.Thread(target=cluster.kill_at_random, args=(random.Random(rng.random()), stop, started)),
            *(
                threading.Thread(target=workload.run_uploads, args=(stop, random.Random(rng.random()), i), daemon=True)
                for i in range(UPLOADERS)
            ),
            threading.Thread(target=workload.run_admin, args=(stop,), daemon=True),
            threading.Thread(
                target=workload.run_monitoring, args=(stop, drained, random.Random(rng.random())), daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        # the killer's rounds end the workload (restarts take longer on a loaded machine)
        threads[0].join(KILLER_TIMEOUT)
        assert not threads[0].is_alive(), f"{len(cluster.kills)} of {KILLS} kills in {KILLER_TIMEOUT} s"
        time.sleep(max(0.0, WORKLOAD_SECONDS - (time.monotonic() - started)))
        stop.set()
        for thread in threads[1:]:
            thread.join(60)
        assert drained.is_set(), "the monitoring sender did not get its last batch acknowledged"
        context = f"{replay_hint()}; kills (s, replica): {cluster.kills}; ledger: {dict(ledger.acknowledged)}"
        assert not ledger.errors, f"answers no kill explains: {ledger.errors[:5]}\n{context}"
        assert len(cluster.kills) == KILLS, context
        assert all(replica.alive() for replica in cluster.replicas)

        _check_packages(cluster, ledger, tmp_path)
        found = _check_deployments(cluster, ledger)
        _check_monitoring(cluster, ledger)
        wait_until(lambda: _converged(admin, found), CONVERGE_TIMEOUT, 0.5, what=f"the agent to converge ({context})")

    for replica in cluster.replicas:
        assert "Traceback" not in replica.output(), replica.output()[-3000:]
    print(
        f"\nreplica kills: {cluster.kills}; acknowledged {dict(ledger.acknowledged)}; "
        f"cut off {dict(ledger.cut_off)}; {len(found)} deployments converged"
    )
    assert ledger.acknowledged["create"] >= 5 and ledger.acknowledged["replace"] >= 5, dict(ledger.acknowledged)
    assert ledger.acknowledged["upload"] >= 10 and ledger.cut_off["upload"] >= 1, dict(ledger.cut_off)
    assert ledger.acknowledged["monitoring"] >= 20, dict(ledger.acknowledged)

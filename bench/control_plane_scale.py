"""Control-plane replicas under agent load (docs/control-plane.md): 1 replica against 3, on one
PostgreSQL, behind HAProxy, side by side in one run. Prints one markdown table and the command.

    python bench/control_plane_scale.py                  # 10,000 deployments, 100 environments, 100 agents, 30 s
    python bench/control_plane_scale.py --quick          # 500 deployments, 10 environments, 10 agents, 5 s
    python bench/control_plane_scale.py --replicas 1,2,3 --database-url postgresql://...

Set-up, once: a throw-away PostgreSQL cluster (as tests/postgres_fixtures.py starts it; or
--database-url), one `deckhand server` replica, then --environments environments with an
agent token each and --deployments deployments spread evenly over them (one small package
shared by all), created by parallel API calls (timed and printed). Every replica shares one
--data-dir (the package files), as replicas on a shared volume do.

Then, for each replica count: that many `deckhand server` processes on the database
(127.0.0.1, each its own port), all LISTENing (checked in pg_stat_activity), and a fresh
HAProxy (Debian's `haproxy`, scripts/setup/10-system-packages.sh) on 127.0.0.1, configured
as the docs give it (examples/replicas/haproxy.cfg: round robin, health-checked).
Everything below goes through HAProxy. Two windows of --duration seconds:

  desired state  --agents simulated agents, one per environment, each long-polling its
        environment's desired state as deckhand.agent does (GET .../desired-state with the
        revision it holds and timeout=30, again at once with the new revision), each on
        its own HTTP connection. Meanwhile a writer changes one deployment at a time at
        --writes-per-second (PATCH keyValueConfig; each change a deployment not changed
        before, environments in turn, sent on schedule whatever the answers' pace) and a
        prober GETs a full desired state (no revision: at once) --probes-per-second, the
        environments in turn. Measured: for each change, the time from its acknowledgement
        (the PATCH's 200 received) to its agent receiving a desired state that carries it
        (p50, p99, max; a change seen before its acknowledgement arrived counts 0 ms, and
        their number is shown); every change must reach its agent (else the run fails);
        the prober's latency; each process's CPU seconds (utime + stime from /proc).
  monitoring ingest   --senders concurrent senders, each posting tracking-agent batches
        (what deckhand.monitoring.tracking_agent posts: deckhand's Aggregator over raw
        records of statistics + 1 row of 4 features + a class prediction, --batch-records
        records over up to 20 deployments of one environment, one minute; a fresh batch id
        and source id each) one after another for the window, with that environment's agent
        token. Measured: records/s accepted (records acknowledged with a 200, every
        aggregate accepted), aggregates/s, batch p50/p99; then exactly-once: the
        deployments' service-health totals (requests, read back through the API) grew by
        exactly the records acknowledged, else the run fails.

The load generator (agents, writer, prober, senders) is this process: one asyncio loop with
httpx, its CPU shown in the table. HAProxy and PostgreSQL run beside it and the replicas on
the same cores. Every process started is stopped by PID; the temp dirs are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
from _common import percentile, start_postgres

import deckhand
from deckhand.client import ControlPlaneClient
from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.records import data_record, stats_record
from deckhand.server.testing import ReplicaProxy, ServerProcess
from deckhand.testing import descendants, wait_until, wait_until_async

ADMIN = "dh_bench-scale-admin-token-0123456789abcdef"
API = "/api/v1"
KEY = "benchChange"  # the keyValueConfig key the writer sets
LONG_POLL_SECONDS = 30.0  # deckhand.agent's default longPollSeconds
INGEST_DEPLOYMENTS = 20  # deployments a sender reports for (of its environment)
QUICK = {"deployments": 500, "environments": 10, "agents": 10, "duration": 5.0}
FULL = {"deployments": 10_000, "environments": 100, "agents": 100, "duration": 30.0}
HZ = os.sysconf("SC_CLK_TCK")
SHARED_CORES = (
    "Every process shares the machine's cores: on a 2-core machine 3 replicas run on the same cores as 1 (with "
    "PostgreSQL, HAProxy and the load generator), so the figures show the overhead and fairness of replicas, "
    "not scale-out. One replica is one Python process, busy on about one core at most: what 3 gain over 1 here "
    "is the rest of the machine's cores, not more machines."
)
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


class BenchFailure(RuntimeError):
    """A check the bench makes on what it measures did not hold: the run fails."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise BenchFailure(what)


# ----- processes ----------------------------------------------------------------------------------


def cpu_seconds(pid: int, children_too: bool = False) -> float:
    """utime + stime of `pid` and its live descendants (`children_too`: plus the reaped
    children's, cutime + cstime: a PostgreSQL backend that exited is counted there)."""
    total = 0.0
    for number, process in enumerate([pid, *descendants(pid)]):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        if children_too and number == 0:
            total += int(fields[13]) + int(fields[14])
    return total / HZ


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def postmaster_pid(cluster: Any) -> int | None:
    try:
        return int((cluster.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def listening_replicas(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


# ----- seeding ------------------------------------------------------------------------------------


@dataclass
class Environment:
    id: str
    token: str
    deployments: list[str] = field(default_factory=list)


async def gather_limited(calls: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


async def api(client: httpx.AsyncClient, method: str, path: str, **options: Any) -> Any:
    response = await client.request(method, path, **options)
    if response.status_code >= 400:
        raise BenchFailure(f"{method} {path}: {response.status_code} {response.text[:500]}")
    return response.json() if response.content else None


async def seed(
    url: str, work: Path, environments: int, deployments: int, concurrency: int
) -> tuple[list[Environment], str]:
    """Environments with an agent token each, and deployments spread evenly over them; a
    line saying how long each part took."""
    from deckhand.packages.demo import train_demo_package

    train_demo_package(work / "demo.dhpkg")
    headers = {"Authorization": f"Bearer {ADMIN}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as client:
        with ControlPlaneClient(url, ADMIN, timeout=120) as sync_client:
            package = sync_client.upload_package(work / "demo.dhpkg")["id"]
        started = time.perf_counter()

        async def environment(i: int) -> Environment:
            body = {"name": f"scale-{i:03d}", "platform": "test"}
            env = await api(client, "POST", f"{API}/environments", json=body)
            token = await api(
                client,
                "POST",
                f"{API}/tokens",
                json={"name": f"scale-agent-{i:03d}", "role": "agent", "environmentIds": [env["id"]]},
            )
            return Environment(env["id"], token["token"])

        envs = await gather_limited([partial(environment, i) for i in range(environments)], concurrency)
        made_envs = time.perf_counter() - started

        async def deployment(i: int) -> None:
            env = envs[i % environments]
            body = {"name": f"d-{i:05d}", "environmentId": env.id, "modelPackageId": package, "active": True}
            env.deployments.append((await api(client, "POST", f"{API}/deployments", json=body))["id"])

        started = time.perf_counter()
        await gather_limited([partial(deployment, i) for i in range(deployments)], concurrency)
        made_deps = time.perf_counter() - started
    line = (
        f"seeding: {environments:,} environments + agent tokens in {made_envs:.1f} s; {deployments:,} deployments "
        f"in {made_deps:.1f} s ({deployments / made_deps:,.0f}/s; POST /deployments, {concurrency} in parallel, "
        f"one replica)"
    )
    return envs, line


# ----- one replica count --------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds over a window: each replica, PostgreSQL, HAProxy, the load generator."""

    replicas: list[float]
    postgres: float | None
    haproxy: float
    loader: float


class Phase:
    """The two windows on `count` replicas behind a fresh HAProxy."""

    def __init__(
        self,
        args: argparse.Namespace,
        work: Path,
        count: int,
        replicas: list[ServerProcess],
        envs: list[Environment],
        postgres_pid: int | None,
    ) -> None:
        self.args = args
        self.work = work
        self.count = count
        self.replicas = replicas
        self.envs = envs
        self.postgres_pid = postgres_pid
        self.proxy: ReplicaProxy | None = None
        self.results: dict[str, str] = {}

    # -- helpers

    def _cpu(self) -> Cpu:
        assert self.proxy is not None
        return Cpu(
            [cpu_seconds(r.pid) for r in self.replicas],
            None if self.postgres_pid is None else cpu_seconds(self.postgres_pid, children_too=True),
            cpu_seconds(self.proxy.pid),
            own_cpu_seconds(),
        )

    def _cpu_rows(self, before: Cpu, after: Cpu, window: str) -> None:
        used = [b - a for a, b in zip(before.replicas, after.replicas, strict=True)]
        each = " / ".join(f"{u:.1f}" for u in used)
        self.results[f"replica CPU s, {window} (each; sum)"] = each + (f"; {sum(used):.1f}" if len(used) > 1 else "")
        pg = "-" if after.postgres is None or before.postgres is None else f"{after.postgres - before.postgres:.1f}"
        self.results[f"PostgreSQL CPU s, {window}"] = pg
        self.results[f"HAProxy CPU s, {window}"] = f"{after.haproxy - before.haproxy:.1f}"
        self.results[f"load generator CPU s, {window}"] = f"{after.loader - before.loader:.1f}"
        self.results[f"load average (1 min) at the end of the {window}"] = f"{os.getloadavg()[0]:.2f}"

    def _requests_per_replica(self, before: list[int]) -> str:
        assert self.proxy is not None
        now = self.proxy.requests_per_server()
        return " / ".join(f"{b - a:,}" for a, b in zip(before, now, strict=True))

    # -- run

    def run(self) -> dict[str, str]:
        wait_until(
            lambda: listening_replicas(self.args.database_url) >= self.count,
            30,
            what=f"{self.count} replicas to LISTEN for revisions",
        )
        backends = [f"127.0.0.1:{r.port}" for r in self.replicas]
        proxy_dir = self.work / f"haproxy-{self.count}"
        proxy_dir.mkdir()
        with ReplicaProxy(proxy_dir, backends) as self.proxy:
            asyncio.run(self._desired_state())
            asyncio.run(self._ingest())
        return self.results

    async def _desired_state(self) -> None:
        assert self.proxy is not None
        args, url = self.args, self.proxy.url
        agents = [self.envs[i % len(self.envs)] for i in range(args.agents)]
        seen: dict[tuple[str, str], float] = {}  # (deployment, value) -> when an agent got it
        errors: list[str] = []
        stop = asyncio.Event()
        timeout = httpx.Timeout(30, read=LONG_POLL_SECONDS + 30)

        async def agent(env: Environment, client: httpx.AsyncClient, revision: int) -> None:
            path = f"{API}/agent/environments/{env.id}/desired-state"
            while not stop.is_set():
                try:
                    response = await client.get(path, params={"revision": revision, "timeout": LONG_POLL_SECONDS})
                except httpx.TransportError as exc:
                    errors.append(f"long poll: {type(exc).__name__}")
                    await asyncio.sleep(0.5)
                    continue
                received = time.monotonic()
                if response.status_code != 200:
                    errors.append(f"long poll: {response.status_code}")
                    await asyncio.sleep(0.5)
                    continue
                state = orjson.loads(response.content)
                for d in state["deployments"]:
                    value = (d.get("keyValueConfig") or {}).get(KEY)
                    if value is not None:
                        seen.setdefault((d["id"], value), received)
                revision = state["revision"]

        clients = [
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {env.token}"}, timeout=timeout)
            for env in agents
        ]
        admin = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=60,
            limits=httpx.Limits(max_connections=64),
        )
        try:
            # each agent's first call, as the real agent's: the state at once, its revision
            first = await asyncio.gather(
                *(
                    api(c, "GET", f"{API}/agent/environments/{env.id}/desired-state")
                    for env, c in zip(agents, clients, strict=True)
                )
            )
            per_env = {len(s["deployments"]) for s in first}
            tasks = [
                asyncio.create_task(agent(env, c, s["revision"]))
                for env, c, s in zip(agents, clients, first, strict=True)
            ]
            await asyncio.sleep(1.0)  # every poll reaches its replica and waits
            requests_before = self.proxy.requests_per_server()
            cpu_before = self._cpu()
            started = time.monotonic()
            end = started + args.duration

            # the writer: one change every 1/rate s, on schedule; each a deployment not changed before
            polled = {env.id for env in agents}
            targets = [
                (env, dep)
                for column in range(max(len(e.deployments) for e in self.envs))
                for env in self.envs
                if env.id in polled
                for dep in env.deployments[column : column + 1]
            ]
            acks: dict[tuple[str, str], tuple[float, float]] = {}

            async def change(n: int, dep: str) -> None:
                value = f"p{self.count}-{n}"
                sent = time.monotonic()
                try:
                    response = await admin.patch(f"{API}/deployments/{dep}", json={"keyValueConfig": {KEY: value}})
                except httpx.TransportError as exc:
                    errors.append(f"change: {type(exc).__name__}")
                    return
                if response.status_code != 200:
                    errors.append(f"change: {response.status_code} {response.text[:200]}")
                    return
                acks[(dep, value)] = (sent, time.monotonic())

            async def writer() -> list[asyncio.Task[None]]:
                sent: list[asyncio.Task[None]] = []
                interval = 1.0 / args.writes_per_second
                for n, (_, dep) in enumerate(targets):
                    at = started + n * interval
                    if at >= end:
                        break
                    await asyncio.sleep(max(0.0, at - time.monotonic()))
                    sent.append(asyncio.create_task(change(n, dep)))
                return sent

            probes: list[float] = []

            async def prober() -> None:
                interval = 1.0 / args.probes_per_second
                n = 0
                while time.monotonic() < end:
                    env = agents[n % len(agents)]
                    client = clients[n % len(agents)]
                    began = time.monotonic()
                    try:
                        response = await client.get(f"{API}/agent/environments/{env.id}/desired-state")
                        state = orjson.loads(response.content) if response.status_code == 200 else None
                    except httpx.TransportError as exc:
                        errors.append(f"probe: {type(exc).__name__}")
                        state = None
                    if state is None:
                        errors.append("probe: no state")
                    else:
                        probes.append((time.monotonic() - began) * 1000)
                        check(
                            len(state["deployments"]) == len(env.deployments),
                            f"a desired state of {len(state['deployments'])} deployments, not {len(env.deployments)}",
                        )
                    n += 1
                    await asyncio.sleep(max(0.0, began + interval - time.monotonic()))

            changes, _ = await asyncio.gather(writer(), prober())
            await asyncio.gather(*changes)
            cpu_after = self._cpu()
            window = time.monotonic() - started
            requests = self._requests_per_replica(requests_before)
            # let the last changes reach their agents (outside the CPU window)
            try:
                await wait_until_async(lambda: all(k in seen for k in acks), 15, what="every change to reach its agent")
            except AssertionError:
                pass
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for c in [*clients, admin]:
                await c.aclose()
        missing = [k for k in acks if k not in seen]
        check(not missing, f"{len(missing)} of {len(acks)} changes never reached their agent, e.g. {missing[:3]}")
        check(bool(acks), "no change was acknowledged")
        latencies = [max(0.0, seen[k] - ack) * 1000 for k, (_, ack) in acks.items()]
        early = sum(1 for k, (_, ack) in acks.items() if seen[k] < ack)
        r = self.results
        r["agents long-polling through HAProxy"] = (
            f"{len(agents):,} ({', '.join(map(str, sorted(per_env)))} deployments each)"
        )
        r["changes (PATCH keyValueConfig), acknowledged"] = (
            f"{len(acks):,} in {window:.1f} s ({len(acks) / window:.1f}/s)"
        )
        r["changes that reached their agent"] = f"{len(acks) - len(missing):,}/{len(acks):,}"
        r["change -> agent, p50 ms"] = f"{statistics.median(latencies):.1f}"
        r["change -> agent, p99 ms"] = f"{percentile(latencies, 0.99):.1f}"
        r["change -> agent, max ms"] = f"{max(latencies):.1f}"
        r["changes seen before their ack arrived (counted 0 ms)"] = f"{early:,}"
        r["full desired state GET, p50 ms"] = f"{statistics.median(probes):.1f}" if probes else "-"
        r["full desired state GET, p99 ms"] = f"{percentile(probes, 0.99):.1f}" if probes else "-"
        r["full desired state GETs"] = f"{len(probes):,}"
        r["HTTP requests per replica, desired-state window"] = requests
        self._cpu_rows(cpu_before, cpu_after, "desired-state window")
        r["errors, desired-state window"] = f"{len(errors)}" + (
            f" ({'; '.join(sorted(set(errors))[:3])})" if errors else ""
        )

    async def _ingest(self) -> None:
        assert self.proxy is not None
        args, url = self.args, self.proxy.url
        senders = []
        for i in range(args.senders):
            env = self.envs[i % len(self.envs)]
            deps = env.deployments[:INGEST_DEPLOYMENTS]
            senders.append((env, deps, template_batch(deps, args.batch_records, f"sender-{i}")))
        watched = sorted({d for _, deps, _ in senders for d in deps})
        minute = senders[0][2][0]["minute"]
        admin = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=120,
            limits=httpx.Limits(max_connections=16),
        )
        window = {"start": iso(minute - 120), "end": iso(minute + 600)}

        async def totals() -> int:
            answers = await gather_limited(
                [
                    partial(api, admin, "GET", f"{API}/deployments/{d}/monitoring/service-health", params=window)
                    for d in watched
                ],
                8,
            )
            return sum(a["totals"]["requests"] for a in answers)

        acked = {"records": 0, "aggregates": 0, "batches": 0}
        latencies: list[float] = []
        errors: list[str] = []

        async def sender(i: int, env: Environment, template: list[dict[str, Any]]) -> None:
            records = sum(a["requests"] for a in template)
            async with httpx.AsyncClient(
                base_url=url,
                timeout=120,
                headers={"Authorization": f"Bearer {env.token}", "Content-Type": "application/json"},
            ) as client:
                n = 0
                while time.monotonic() < end:
                    ident = f"scale-{self.count}-{i}-{n}"
                    body = orjson.dumps({"batchId": ident, "records": [{**a, "sourceId": ident} for a in template]})
                    n += 1
                    began = time.monotonic()
                    try:
                        response = await client.post(f"{API}/monitoring/batches", content=body)
                    except httpx.TransportError as exc:
                        errors.append(f"batch: {type(exc).__name__}")
                        continue
                    if response.status_code != 200:
                        errors.append(f"batch: {response.status_code} {response.text[:200]}")
                        continue
                    latencies.append((time.monotonic() - began) * 1000)
                    answer = response.json()
                    check(
                        answer["accepted"] == len(template)
                        and not answer["duplicate"]
                        and not answer["unknownDeployments"],
                        f"batch {ident}: {answer}",
                    )
                    acked["records"] += records
                    acked["aggregates"] += len(template)
                    acked["batches"] += 1

        try:
            before = await totals()
            requests_before = self.proxy.requests_per_server()
            cpu_before = self._cpu()
            started = time.monotonic()
            end = started + args.duration
            await asyncio.gather(*(sender(i, env, t) for i, (env, _, t) in enumerate(senders)))
            elapsed = time.monotonic() - started
            cpu_after = self._cpu()
            requests = self._requests_per_replica(requests_before)
            counted = await totals() - before
        finally:
            await admin.aclose()
        check(
            counted == acked["records"],
            f"exactly-once: the control plane counted {counted:,} requests, {acked['records']:,} were acknowledged",
        )
        r = self.results
        r["ingest senders / batches acknowledged"] = f"{args.senders} / {acked['batches']:,}"
        r["ingest records/s accepted"] = f"{acked['records'] / elapsed:,.0f}"
        r["ingest aggregates/s accepted"] = f"{acked['aggregates'] / elapsed:,.0f}"
        r["ingest batch p50 / p99 ms"] = (
            f"{statistics.median(latencies):.0f} / {percentile(latencies, 0.99):.0f}" if latencies else "-"
        )
        r["exactly-once: records acknowledged = counted"] = f"{acked['records']:,} = {counted:,}"
        r["HTTP requests per replica, ingest window"] = requests
        self._cpu_rows(cpu_before, cpu_after, "ingest window")
        r["errors, ingest window"] = f"{len(errors)}" + (f" ({'; '.join(sorted(set(errors))[:3])})" if errors else "")


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def template_batch(deployments: list[str], records: int, source: str) -> list[dict[str, Any]]:
    """What the tracking agent posts for `records` raw records (statistics + 1 row of 4
    features + a class prediction each, as a prediction server reports a 1-row request)
    spread over `deployments`, this minute: deckhand's Aggregator output, one aggregate a
    deployment. The sender gives each copy its own source id."""
    now = time.time()
    minute_start = now // 60 * 60
    aggregator = Aggregator()
    for i in range(records):
        dep = deployments[i % len(deployments)]
        record = stats_record(dep, None, 1, 0.4 + (i % 97) / 50, timestamp=minute_start + (i % 50))
        label = ("setosa", "versicolor", "virginica")[i % 3]
        record.update(data_record(dep, None, [{**ROW, "sepal_length": 4.5 + (i % 31) / 10}], [label]))
        aggregator.add(source, record)
    return aggregator.drain()


# ----- main ---------------------------------------------------------------------------------------


@contextmanager
def replicas_on(work: Path, database_url: str) -> Iterator[Callable[[int], list[ServerProcess]]]:
    """`resize(n)`: exactly the first n replicas running (started or stopped as needed)."""
    started: list[ServerProcess] = []

    def resize(n: int) -> list[ServerProcess]:
        while len(started) > n:
            started.pop().stop()
        while len(started) < n:
            server = ServerProcess(
                work / "cp", ADMIN, database_url=database_url, log_path=work / f"replica-{len(started)}.log"
            )
            started.append(server.start(timeout=120))
        return list(started)

    try:
        yield resize
    finally:
        resize(0)


def table(counts: list[int], results: dict[int, dict[str, str]]) -> list[str]:
    names = [f"{n} replica{'s' if n > 1 else ''}" for n in counts]
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---:|" * len(counts)]
    order: list[str] = []
    for n in counts:
        order += [k for k in results.get(n, {}) if k not in order]
    for key in order:
        lines.append(f"| {key} | " + " | ".join(results.get(n, {}).get(key, "-") for n in counts) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, help=f"deployments in all (default {FULL['deployments']:,})")
    parser.add_argument("--environments", type=int, help=f"environments (default {FULL['environments']})")
    parser.add_argument("--agents", type=int, help=f"simulated agents, one per environment (default {FULL['agents']})")
    parser.add_argument(
        "--duration", type=float, help=f"seconds of each measured window (default {FULL['duration']:g})"
    )
    parser.add_argument("--replicas", default="1,3", help="replica counts, measured in this order (default 1,3)")
    parser.add_argument("--database-url", help="PostgreSQL URL of an empty database (default: a throw-away cluster)")
    parser.add_argument("--writes-per-second", type=float, default=10.0, help="deployment changes a second (10)")
    parser.add_argument("--probes-per-second", type=float, default=5.0, help="full desired-state GETs a second (5)")
    parser.add_argument("--senders", type=int, default=8, help="concurrent monitoring senders (8)")
    parser.add_argument("--batch-records", type=int, default=2000, help="raw records a monitoring batch (2,000)")
    parser.add_argument("--seed-concurrency", type=int, default=16, help="parallel API calls while seeding (16)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (unless given): " + ", ".join(f"{v:g} {k}" for k, v in QUICK.items()),
    )
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    try:
        counts = [int(c) for c in args.replicas.split(",") if c.strip()]
    except ValueError:
        parser.error(f"--replicas: replica counts such as 1,3, not {args.replicas!r}")
    if not counts or min(counts) < 1:
        parser.error(f"--replicas: positive counts such as 1,3, not {args.replicas!r}")
    if (
        min(args.deployments, args.environments, args.agents, args.senders, args.batch_records) < 1
        or args.duration <= 0
    ):
        parser.error(
            "--deployments, --environments, --agents, --senders, --batch-records and --duration must be positive"
        )
    if args.agents > args.environments:
        parser.error(
            f"--agents ({args.agents}) must not exceed --environments ({args.environments}): one agent an environment"
        )
    if args.deployments < args.environments:
        parser.error("--deployments must be at least --environments (every environment gets some)")
    if shutil.which("haproxy") is None:
        print(
            "haproxy is not installed: run scripts/setup/10-system-packages.sh (Debian package `haproxy`)",
            file=sys.stderr,
        )
        return 2
    # the servers this script starts run the deckhand it imported
    src = str(Path(deckhand.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])

    command = shlex.join(["python", "bench/control_plane_scale.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"command: {command}")
    print(
        f"sizes: {args.deployments:,} deployments over {args.environments} environments, {args.agents} agents, "
        f"{args.duration:g} s windows; replicas: {', '.join(map(str, counts))}"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    began = time.perf_counter()
    results: dict[int, dict[str, str]] = {}
    failed = None
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="deckhand-bench-scale-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        cluster: list[object] = []
        if args.database_url is None:
            args.database_url, why = start_postgres(stack, cluster)
            if args.database_url is None:
                print(f"cannot start PostgreSQL: {why}", file=sys.stderr)
                return 2
        postgres_pid = postmaster_pid(cluster[0]) if cluster else None
        resize = stack.enter_context(replicas_on(work, args.database_url))
        try:
            first = resize(1)[0]
            envs, seeded = asyncio.run(
                seed(first.url, work, args.environments, args.deployments, args.seed_concurrency)
            )
            print(seeded, flush=True)
            for n in counts:
                print(f"{n} replica(s): measuring ...", flush=True)
                results[n] = Phase(args, work, n, resize(n), envs, postgres_pid).run()
        except (BenchFailure, AssertionError) as exc:
            failed = str(exc)
            for log in sorted(work.glob("replica-*.log")):
                print(f"{log.name} (tail):\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
    print()
    print("\n".join(table(counts, results)))
    database = "--database-url" if postgres_pid is None else "a throw-away cluster as the tests run it (fsync=off)"
    print(
        f"\ncommand: {command}\ntotal {time.perf_counter() - began:.0f} s; load average "
        f"{os.getloadavg()[0]:.2f} at end on {os.cpu_count()} CPUs.\n{SHARED_CORES}\nPostgreSQL: {database}; "
        "load generator: this process (one asyncio loop, httpx), beside the replicas on the same cores."
    )
    if failed:
        print(f"FAILED: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

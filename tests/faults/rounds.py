"""The kill rounds of the fault-injection suite: what the test knows, the operations,
convergence and the invariants checked after every round.

A round starts light prediction traffic on the deployments it does not touch, starts one
operation in a thread (create a deployment, replace its model, delete it, upload a
package slowly, or a burst of predictions), SIGKILLs one component at a random moment
within the operation's window, brings it back, waits (event-driven) until the system has
converged and then checks every invariant. The test knows only what the system
acknowledged: an API call cut off by a control-plane kill may or may not have happened,
and the control plane's answer after convergence says which (it must be one or the other).

Monitoring: what the system promises (docs/monitoring.md) is that nothing *spooled* (or
confirmed by RabbitMQ) is lost or counted twice when the tracking agent, the control
plane or RabbitMQ restarts, and that a prediction server stopped cleanly (SIGTERM: the
agent restarting it) publishes what it buffered. A prediction server SIGKILLed before its
reporter's next publish (every 0.5 s) loses the counts it held in memory; nothing can
bring those back. So, per deployment:

- the control plane's request total never exceeds the 200s we received (no double count);
- it equals them exactly unless a prediction server was SIGKILLed since the last check;
- after such a kill it is at least (200s received) - (200s whose request was sent before
  that server was seen dead: the only ones its memory could hold), and the next rounds
  are exact again from the total then counted.

"Caught up" is decided by events, not time: a probe deployment gets no traffic but one
request per round after convergence, and its total must reach exactly its count. The
reporter drains every deployment's counts at once and publishes them in order, and the
tracking agent sends spool files (RabbitMQ messages) oldest first, so once the probe's
last request is counted, everything the live prediction server answered before it is too.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from deckhand import deployment_dirs
from deckhand.client.errors import ControlPlaneError
from deckhand.faults import CONTROL_PLANE, PREDICTION_SERVER, Kill, Stack
from deckhand.packages.container import MANIFEST_NAME, PAYLOAD_DIR, file_sha256, payload_digest, write_package
from deckhand.packages.demo import sample_rows
from deckhand.packages.manifest import Manifest
from deckhand.testing import wait_until

ROW = sample_rows(1)  # one row per request: rows must equal requests in monitoring
TRAFFIC_PAUSE = 0.05  # light traffic during every round: about 20 requests a second
BURST_SECONDS = 1.5
UPLOAD_SECONDS = 1.0  # a slow client: the upload is still streaming when the kill comes
# Every package gets this much random padding: its own sha256 (so each new one is downloaded
# by the agent) and a size at which downloads, copies and uploads take long enough to be cut.
PADDING_BYTES = 4 << 20
WIP_SHARE = 0.5  # of the kills of a component that writes files: at a moment it has one half-written
CONVERGE_TIMEOUT = 120.0
MAX_DEPLOYMENTS = 5  # besides the probe
OPERATIONS = ("create", "replace", "delete", "upload", "burst")
# How long after an operation starts the kill may come: the API call and the agent's work
# it sets off (a create or replace is answering within about a second here).
KILL_WINDOW = {"create": 1.2, "replace": 1.2, "delete": 1.0, "upload": UPLOAD_SECONDS, "burst": BURST_SECONDS}
# Killing these must not cost a single prediction: serving does not depend on them.
SERVING_INDEPENDENT = {CONTROL_PLANE, "tracking-agent", "rabbitmq"}
INVARIANTS = (
    "acknowledged-state",
    "deployments-served",
    "serving-continuity",
    "monitoring-totals",
    "no-half-written-files",
    "package-sha256",
    "one-prediction-server",
    "no-orphans",
    "api-no-5xx",
)


def padded_package(source: Path, dest: Path, rng: random.Random, padding: int = PADDING_BYTES) -> Path:
    """`source` with one more payload file of random bytes: the same model, its own sha256."""
    with zipfile.ZipFile(source) as archive:
        manifest = json.loads(archive.read(MANIFEST_NAME))
        files = {
            n.removeprefix(PAYLOAD_DIR): archive.read(n)
            for n in archive.namelist()
            if n.startswith(PAYLOAD_DIR) and not n.endswith("/")
        }
    files["padding.bin"] = rng.randbytes(padding)
    manifest.update(payload_sha256=payload_digest(files.items()), payload_files=sorted(files))
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_package(dest, Manifest.model_validate(manifest), files)
    return dest


def slow_upload(url: str, token: str, path: Path, seconds: float = UPLOAD_SECONDS) -> dict[str, Any]:
    """Upload in 40 pieces over `seconds` (a slow client), with the sha256 ahead."""
    data = path.read_bytes()
    pieces = 40
    pace = threading.Event()

    def body() -> Any:
        for i in range(pieces):
            yield data[i * len(data) // pieces : (i + 1) * len(data) // pieces]
            pace.wait(seconds / pieces)

    response = httpx.post(
        f"{url}/api/v1/model-packages",
        content=body(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
            "X-Checksum-Sha256": file_sha256(path),
        },
        timeout=30,
    )
    if response.status_code != 201:
        raise ControlPlaneError(response.status_code, response.text[:300])
    package: dict[str, Any] = response.json()
    return package


class RoundFailed(AssertionError):
    pass


class Ledger:
    """Prediction answers, per deployment, against what monitoring must have counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.expected: Counter[str] = Counter()  # 200s the control plane must count (see the module doc)
        self.at_risk: Counter[str] = Counter()  # of those, held by a server SIGKILLed since the last check
        self.lost: Counter[str] = Counter()  # what server kills really cost (the summary)
        self.answered = 0
        self.answers: list[tuple[str, float, int | None]] = []  # this round: (deployment, sent at, status)

    def record(self, deployment: str, sent_at: float, status: int | None) -> None:
        with self._lock:
            self.answers.append((deployment, sent_at, status))
            if status == 200:
                self.expected[deployment] += 1
                self.answered += 1

    def new_round(self) -> None:
        with self._lock:
            self.answers = []

    def server_killed(self, kill: Kill) -> None:
        """Answers to requests sent before the server was seen dead came from it (a request
        sent to a dead server fails; its successor starts only after): they may be lost."""
        with self._lock:
            for deployment, sent_at, status in self.answers:
                if status == 200 and sent_at < kill.at:
                    self.at_risk[deployment] += 1


class Traffic:
    """Predictions in a thread, round robin over `urls`, each answer recorded in the ledger."""

    def __init__(self, urls: dict[str, str], ledger: Ledger, pause: float) -> None:
        self.urls = list(urls.items())
        self.ledger = ledger
        self.pause = pause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-traffic", daemon=True)

    def start(self) -> Traffic:
        if self.urls:
            self._thread.start()
        return self

    def run_for(self, seconds: float) -> None:
        self.start()
        self._stop.wait(seconds)
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            index = 0
            while not self._stop.is_set():
                deployment, url = self.urls[index % len(self.urls)]
                index += 1
                sent_at = time.monotonic()
                try:
                    status: int | None = http.post(url, json=ROW).status_code
                except httpx.HTTPError:
                    status = None
                self.ledger.record(deployment, sent_at, status)
                if self.pause or status is None:  # a server that is down answers at once: don't spin
                    self._stop.wait(self.pause or 0.01)


@dataclass
class Outcome:
    """What an operation did, as far as the client can tell."""

    op: str
    target: str | None = None  # the deployment (a create's once acknowledged)
    model: str | None = None  # create / replace: the package
    acked: bool = False
    error: str | None = None
    package: dict[str, Any] | None = None  # upload: the control plane's record


@dataclass
class Plan:
    number: int
    op: str
    victim: str
    delay: float
    target: str | None = None
    model: str | None = None
    package_path: Path | None = None
    moment: str = "random"  # or "work-in-progress": as soon as the victim has a temp file open
    cut: str | None = None  # the temp file the kill cut, if it came at such a moment


@dataclass
class Tally:
    """The summary of one variant."""

    rounds: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    cuts: Counter[str] = field(default_factory=Counter)  # kills that cut a write in half, per component
    cut_files: Counter[str] = field(default_factory=Counter)  # what was being written (names generalised)
    ops: Counter[str] = field(default_factory=Counter)
    unacknowledged: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    api_requests: int = 0
    spool_temps_of_killed_servers: set[str] = field(default_factory=set)  # left until a reader's minute is up
    round_seconds: list[float] = field(default_factory=list)


class World:
    """The stack plus what the test knows about it."""

    def __init__(self, stack: Stack, rng: random.Random, sources: list[Path]) -> None:
        self.stack = stack
        assert stack.client is not None
        self.client = stack.client
        self.rng = rng
        self.sources = sources  # trained packages; what is uploaded are padded copies of them
        self.packages: dict[str, Path] = {}  # package id -> the file uploaded
        self.deployments: dict[str, str] = {}  # id -> model package id, as of the last convergence
        self.probe = ""
        self.ever: list[str] = []  # every deployment id seen (deleted ones too: the API sweep)
        self.deleted: set[str] = set()  # acknowledged deletes: must never come back
        self.ledger = Ledger()
        self.killed_servers: set[int] = set()
        self.tally = Tally()
        self.since = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S")

    # ----- set-up --------------------------------------------------------------------------
    def set_up(self) -> None:
        for number, source in enumerate(self.sources):
            path = self.new_package(f"set-up-{number}", source)
            self.packages[self.client.upload_package(path)["id"]] = path
        first = next(iter(self.packages))
        self.probe = self._create("probe", first)
        for name in ("base-1", "base-2"):
            self._create(name, self.rng.choice(list(self.packages)))
        self.deployments = self.converge(Outcome("set-up"))
        self.check_all(None)

    def _create(self, name: str, model: str) -> str:
        dep = self.client.create_deployment(name, self.stack.env_id, model)["id"]
        self.ever.append(dep)
        return dep

    def new_package(self, name: str, source: Path) -> Path:
        return padded_package(source, self.stack.base / "packages" / f"{name}.dhpkg", self.rng)

    # ----- a round -------------------------------------------------------------------------
    def plan(self, number: int, victim: str) -> Plan:
        others = [d for d in self.deployments if d != self.probe]
        allowed = [
            op
            for op in OPERATIONS
            if not (op == "create" and len(others) >= MAX_DEPLOYMENTS) and not (op == "delete" and len(others) < 2)
        ]
        op = self.rng.choice(allowed)
        plan = Plan(number, op, victim, round(self.rng.uniform(0, KILL_WINDOW[op]), 3))
        if op == "create":
            plan.model = self.rng.choice(sorted(self.packages))
        elif op == "replace":
            plan.target = self.rng.choice(sorted(self.deployments))
            plan.model = self.rng.choice(sorted(set(self.packages) - {self.deployments[plan.target]}))
        elif op == "delete":
            plan.target = self.rng.choice(sorted(others))
        elif op == "upload":
            plan.package_path = self.new_package(f"r{number}", self.rng.choice(self.sources))
        if self.stack.writes_files(victim) and self.rng.random() < WIP_SHARE:
            plan.moment = "work-in-progress"
        return plan

    def run_round(self, plan: Plan) -> None:
        started = time.monotonic()
        self.ledger.new_round()
        quiet = {self.probe, plan.target}  # the probe gets no traffic; nor does what is deleted
        background = Traffic(self.urls(exclude=quiet), self.ledger, TRAFFIC_PAUSE).start()
        box: dict[str, Outcome] = {}
        worker = threading.Thread(target=lambda: box.update(outcome=self.operate(plan)), name="fault-op")
        worker.start()
        if plan.moment == "work-in-progress":
            plan.cut = self.wait_for_work_in_progress(plan.victim, KILL_WINDOW[plan.op])
        else:
            threading.Event().wait(plan.delay)  # the random moment of the kill
        kill = self.stack.kill(plan.victim)
        self.stack.restart(plan.victim, kill)
        worker.join(CONVERGE_TIMEOUT)
        if worker.is_alive():
            raise RoundFailed(f"the {plan.op} operation did not return within {CONVERGE_TIMEOUT} s")
        outcome = box["outcome"]
        if outcome.error and plan.victim != CONTROL_PLANE:
            raise RoundFailed(f"{plan.op} failed though the control plane was not killed: {outcome.error}")
        cp = self.converge(outcome)
        background.stop()
        if plan.victim == PREDICTION_SERVER:
            self.ledger.server_killed(kill)
            self.killed_servers.add(kill.pid)
        self.check_acknowledged(plan, outcome, cp)
        self.deployments = cp
        self.check_all(plan)
        self.tally.rounds += 1
        self.tally.kills[plan.victim] += 1
        if plan.cut:
            self.tally.cuts[plan.victim] += 1
            self.tally.cut_files[re.sub(r"[0-9a-f]{6,}|\d+", "*", plan.cut)] += 1
        self.tally.ops[plan.op] += 1
        if not outcome.acked:
            self.tally.unacknowledged[plan.op] += 1
        self.tally.round_seconds.append(time.monotonic() - started)

    def wait_for_work_in_progress(self, victim: str, window: float) -> str | None:
        """Poll (every millisecond) until the victim has a temp file open, within `window`
        seconds of the operation's start; its name, or None (then the kill comes at the end)."""
        deadline = time.monotonic() + window
        pause = threading.Event()
        while time.monotonic() < deadline:
            found = self.stack.work_in_progress(victim)
            if found:
                return found[0].name
            pause.wait(0.001)
        return None

    def urls(self, exclude: set[str | None] = frozenset()) -> dict[str, str]:  # type: ignore[assignment]
        base = self.stack.server_url
        return {d: f"{base}/deployments/{d}/predictions" for d in sorted(self.deployments) if d not in exclude}

    # ----- operations (in a thread; the kill may cut them off) -----------------------------
    def operate(self, plan: Plan) -> Outcome:
        outcome = Outcome(plan.op, plan.target, plan.model)
        try:
            if plan.op == "create":
                outcome.target = self._create(f"r{plan.number}", str(plan.model))
            elif plan.op == "replace":
                self.client.replace_model(str(plan.target), str(plan.model))
            elif plan.op == "delete":
                self.client.delete_deployment(str(plan.target))
            elif plan.op == "upload":
                assert plan.package_path is not None
                outcome.package = slow_upload(self.stack.cp.url, self.stack.admin_token, plan.package_path)
                self.packages[outcome.package["id"]] = plan.package_path
            elif plan.op == "burst":
                Traffic(self.urls(exclude={self.probe}), self.ledger, 0.0).run_for(BURST_SECONDS)
            outcome.acked = True
        except (ControlPlaneError, httpx.HTTPError) as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome

    # ----- convergence -----------------------------------------------------------------------
    def converge(self, outcome: Outcome) -> dict[str, str]:
        """Wait until the control plane, the agent's reports, the prediction server and the
        models dir agree: every deployment the control plane has is ready with its model,
        served, and on disk; nothing else is. Returns id -> model package id."""
        server = self.stack.server_url

        def settled() -> dict[str, str]:
            cp = {d["id"]: d for d in self.client.list_deployments(self.stack.env_id)}
            models = {d: record["modelPackageId"] for d, record in cp.items()}
            for dep, record in cp.items():
                seen = record.get("observed") or {}
                if seen.get("state") != "ready" or seen.get("modelId") != models[dep]:
                    raise AssertionError(f"{dep} observed {seen.get('state')} {seen.get('modelId')}, not {models[dep]}")
                if seen.get("predictionUrl") != f"{server}/deployments/{dep}/predictions":
                    # a restarted agent's report is still to come
                    raise AssertionError(f"{dep} reported at {seen.get('predictionUrl')}, the server is {server}")
            served = httpx.get(f"{server}/deployments", timeout=5).json()["data"]
            serving = {e["deploymentId"]: e["modelId"] for e in served if e["state"] == "ready"}
            if serving != models or len(served) != len(models):
                raise AssertionError(f"the prediction server serves {serving}, the control plane has {models}")
            scanned = deployment_dirs.scan(self.stack.models_dir)
            on_disk = {n: d.model_id for n, d in scanned.items() if not isinstance(d, Exception)}
            if on_disk != models:
                raise AssertionError(f"{self.stack.models_dir} holds {on_disk}")
            return models

        found: dict[str, str] = wait_until(settled, CONVERGE_TIMEOUT, 0.05, what=f"convergence after {outcome.op}")
        self.ever += [d for d in found if d not in self.ever]
        return found

    # ----- invariants ------------------------------------------------------------------------
    def check_acknowledged(self, plan: Plan, outcome: Outcome, cp: dict[str, str]) -> None:
        """What the system acknowledged holds; what it did not is all or nothing."""
        problems = []
        before = self.deployments
        for dep, model in before.items():
            if dep == plan.target and plan.op in ("delete", "replace"):
                continue
            if cp.get(dep) != model:
                problems.append(f"{dep} was {model}, untouched this round, now {cp.get(dep)}")
        if plan.op == "delete":
            if outcome.acked and plan.target in cp:
                problems.append(f"acknowledged delete of {plan.target}, still there")
            if outcome.acked:
                self.deleted.add(str(plan.target))
            elif plan.target in cp and cp[str(plan.target)] != before[str(plan.target)]:
                problems.append(f"{plan.target} changed model on a delete")
        if plan.op == "replace" and cp.get(str(plan.target)) not in (
            (plan.model,) if outcome.acked else (plan.model, before[str(plan.target)])
        ):
            now = cp.get(str(plan.target))
            problems.append(f"replace of {plan.target} by {plan.model} (acknowledged: {outcome.acked}): now {now}")
        new = set(cp) - set(before)
        if plan.op == "create" and outcome.acked:
            if new != {outcome.target} or cp[str(outcome.target)] != plan.model:
                problems.append(f"acknowledged create {outcome.target} ({plan.model}): new deployments {new}")
        elif plan.op == "create" and new:  # cut off, but committed: it must be ours, whole
            names = {d["id"]: d["name"] for d in self.client.list_deployments(self.stack.env_id)}
            if len(new) > 1 or any(names[d] != f"r{plan.number}" or cp[d] != plan.model for d in new):
                problems.append(f"unacknowledged create left {[(d, names[d], cp[d]) for d in new]}")
        elif new:
            problems.append(f"deployments appeared on a {plan.op}: {sorted(new)}")
        if returned := self.deleted & set(cp):
            problems.append(f"deleted deployments came back: {sorted(returned)}")
        if plan.op == "upload" and outcome.acked:
            assert outcome.package is not None
            if outcome.package["sha256"] != file_sha256(plan.package_path):  # type: ignore[arg-type]
                problems.append(f"upload acknowledged with sha256 {outcome.package['sha256']}")
        self._verdict("acknowledged-state", problems)

    def check_all(self, plan: Plan | None) -> None:
        self.check_served()
        if plan is not None:
            self.check_traffic(plan.victim)
        self.check_monitoring()
        self.check_files()
        self._verdict("one-prediction-server", self.stack.process_problems())
        self._verdict("no-orphans", self.stack.unexpected_processes())
        count, problems = self.stack.api_sweep(self.ever)
        self.tally.api_requests += count
        self._verdict("api-no-5xx", problems)

    def check_served(self) -> None:
        """Every deployment answers at its reported URL with its model: /info and a prediction."""
        problems = []
        with httpx.Client(timeout=10) as http:
            for dep, model in sorted(self.deployments.items()):
                seen = self.client.get_deployment(dep).get("observed") or {}
                url = seen.get("predictionUrl") or ""
                if url != f"{self.stack.server_url}/deployments/{dep}/predictions":
                    problems.append(f"{dep}: reported prediction URL {url!r}")
                    continue
                info = http.get(url.removesuffix("/predictions") + "/info")
                if info.status_code != 200 or info.json().get("modelId") != model:
                    problems.append(f"{dep}: /info {info.status_code} {info.text[:200]}, wants model {model}")
                sent_at = time.monotonic()
                answer = http.post(url, json=ROW)
                self.ledger.record(dep, sent_at, answer.status_code)
                if answer.status_code != 200 or len(answer.json().get("data", answer.json())) != 1:
                    problems.append(f"{dep}: prediction {answer.status_code} {answer.text[:200]}")
            for dep in sorted(self.deleted):
                gone = http.get(f"{self.stack.server_url}/deployments/{dep}/info")
                if gone.status_code != 404:
                    problems.append(f"deleted {dep}: /info answers {gone.status_code}")
        self._verdict("deployments-served", problems)

    def check_traffic(self, victim: str) -> None:
        """No prediction failed with an HTTP error, ever; none failed at all unless the
        victim was the prediction server or the agent (which restarts the server)."""
        statuses = Counter(status for _, _, status in self.ledger.answers)
        problems = [f"{n} predictions answered {s}" for s, n in statuses.items() if s not in (200, None)]
        if statuses.get(None) and victim in SERVING_INDEPENDENT:
            problems.append(f"{statuses[None]} predictions failed while only the {victim} was down")
        self._verdict("serving-continuity", problems)

    def totals(self, dep: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.service_health(dep, start=self.since)["totals"]
        return result

    def check_monitoring(self) -> None:
        """See the module docstring: exact, or lower only by what a SIGKILLed server held."""
        if not self.stack.use_rabbitmq:
            spool = self.stack.spool_dir
            wait_until(lambda: not list(spool.glob("*.jsonl")), CONVERGE_TIMEOUT, 0.05, what="spool sent")
        probe_url = self.urls()[self.probe]
        sent_at = time.monotonic()
        status = httpx.post(probe_url, json=ROW, timeout=10).status_code
        self.ledger.record(self.probe, sent_at, status)
        wanted = self.ledger.expected[self.probe]

        def probe_counted() -> int:
            counted = int(self.totals(self.probe)["requests"])
            return counted if counted >= wanted else 0

        counted = wait_until(probe_counted, CONVERGE_TIMEOUT, 0.05, what="the probe counted by monitoring")
        problems = [] if counted == wanted else [f"probe {self.probe}: {counted} counted, {wanted} answered"]
        if self.stack.use_rabbitmq:
            from deckhand.monitoring.channels.rabbitmq import RabbitMQChannel

            depth = RabbitMQChannel.from_spec(self.stack.monitoring_spec).queue_depth()
            if depth:
                problems.append(f"{depth} messages still queued once the probe was counted")
        for dep in sorted(self.deployments):
            totals = self.totals(dep)
            counted, expected, risk = int(totals["requests"]), self.ledger.expected[dep], self.ledger.at_risk[dep]
            if counted > expected:
                problems.append(f"{dep}: {counted} requests counted, only {expected} answered (double counting)")
            elif counted < expected - risk:
                problems.append(f"{dep}: {counted} counted, {expected} answered, only {risk} held by a killed server")
            if totals["rows"] != counted or totals["userErrors"] or totals["systemErrors"]:
                problems.append(f"{dep}: totals {totals} (one row a request, no errors)")
            self.ledger.lost[dep] += max(expected - counted, 0)
            self.ledger.expected[dep] = counted
            self.ledger.at_risk[dep] = 0
        self._verdict("monitoring-totals", problems)

    def check_files(self) -> None:
        """Nothing half-written: no work-in-progress names in the agent's work dir (models
        dir, spool, package cache), nor in the control plane's artifacts dir, and every
        package file hashes to what the control plane recorded. One exception, by design:
        a prediction server SIGKILLed while writing a spool file leaves its temp file
        (`.<name>.tmp`, never read); a reader removes those when they are a minute old, as a
        live writer in another pid namespace cannot be told from a dead one. Those are
        allowed only when the writer pid in their name is a server this test SIGKILLed."""
        problems = []
        for path in self.stack.leftover_files():
            writer = path.name.split("-")[1] if path.name.count("-") >= 2 else ""
            if path.parent == self.stack.spool_dir and path.name.endswith(".jsonl.tmp") and writer.isdigit():
                if int(writer) in self.killed_servers:
                    self.tally.spool_temps_of_killed_servers.add(path.name)
                    continue
            problems.append(f"left behind: {path}")
        self._verdict("no-half-written-files", problems)
        self._verdict("package-sha256", self.stack.package_problems(self.client.list_packages()))

    def _verdict(self, invariant: str, problems: list[str]) -> None:
        self.tally.checks[invariant] += 1
        if problems:
            raise RoundFailed(f"invariant {invariant}: " + "; ".join(problems))


def balanced_victims(rng: random.Random, components: list[str], rounds: int) -> list[str]:
    """Each component about as often as the others, in a random order."""
    victims = [components[i % len(components)] for i in range(rounds)]
    rng.shuffle(victims)
    return victims


def summary(variant: str, tally: Tally, ledger: Ledger, seconds: float) -> str:
    kills = ", ".join(
        f"{c} {n}" + (f" ({tally.cuts[c]} mid-write)" if tally.cuts[c] else "") for c, n in sorted(tally.kills.items())
    )
    ops = ", ".join(
        f"{op} {n}" + (f" ({tally.unacknowledged[op]} cut off)" if tally.unacknowledged[op] else "")
        for op, n in sorted(tally.ops.items())
    )
    checks = sum(tally.checks.values())
    slowest = max(tally.round_seconds, default=0.0)
    return (
        f"[{variant}] {tally.rounds} rounds in {seconds:.0f} s (slowest round {slowest:.1f} s)\n"
        f"  kills: {kills}\n  operations: {ops}\n"
        f"  cut mid-write: {', '.join(f'{name} {n}' for name, n in sorted(tally.cut_files.items())) or 'nothing'}\n"
        f"  invariants checked: {checks} ({len(tally.checks)} kinds: {', '.join(sorted(tally.checks))}); "
        f"{tally.api_requests} API GETs\n"
        f"  predictions answered: {ledger.answered}; lost with SIGKILLed prediction servers: "
        f"{sum(ledger.lost.values())}; spool temp files of killed servers: {len(tally.spool_temps_of_killed_servers)}"
    )

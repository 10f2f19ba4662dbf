"""Accuracy from actuals (docs/accuracy.md): how fast the control plane takes actuals, and how
fast it answers accuracy. Prints one markdown table and the command that made it.

    python bench/accuracy.py                              # 1,000,000 actuals, 1,000 deployments, SQLite
    python bench/accuracy.py --database sqlite,postgres   # the same on both, side by side
    python bench/accuracy.py --quick                      # 20,000 actuals, 50 deployments

Each database gets its own `deckhand server` process (127.0.0.1, a temp dir; PostgreSQL: a
throw-away cluster started as tests/postgres_fixtures.py starts it). Stages, each timed:
  predictions load   N predictions of one deployment by association id (regression, spread
        over 24 h of minutes), POSTed to /api/v1/monitoring/batches as `scored` items,
        --batch-rows a request.
  actuals upload     the N actuals written to a CSV file, then `deckhand actuals upload FILE
        --deployment ID` run as a user runs it (a subprocess, its default 10,000 rows a
        request); the wall time includes the CLI's start. Checked: N new, N matched; then
        the accuracy query over the 24 h: matched = N and RMSE, MAE = numpy's on the same
        numbers (abs 1e-6), else the run fails.
  actuals re-send    the same command and file again: every row `unchanged`, accuracy the same.
  evaluation setup   M more deployments, each with 100 predictions and their actuals spread
        over the same 24 h (one minute every 14), through monitoring batches.
  accuracy evaluation   GET /api/v1/deployments/ID/accuracy (the 24 h, hourly buckets) for
        each of the M deployments in turn: total, p50 and p99 per deployment; each answer
        checked (100 matched, RMSE = numpy's).
The server's peak RSS is its VmHWM, reset before each stage. Every process started is
stopped by PID; the temp dirs are removed.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _common import percentile, start_postgres

import deckhand
from deckhand.client import ControlPlaneClient
from deckhand.monitoring.records import actuals_record, scored_record
from deckhand.server.testing import ServerProcess
from deckhand.testing import DECKHAND, peak_rss_mib, reset_peak_rss

ADMIN = "dh_bench-accuracy-admin-token-0123456789"
DAY_MINUTES = 24 * 60
EVAL_ROWS = 100  # matched rows per deployment of the evaluation
QUICK = {"actuals": 20_000, "deployments": 50}
TOLERANCE = 1e-6
UPLOAD_LINE = re.compile(
    r"(?P<received>[\d,]+) rows: (?P<new>[\d,]+) new, (?P<updated>[\d,]+) updated, (?P<unchanged>[\d,]+) unchanged; "
    r"(?P<matched>[\d,]+) matched a prediction, (?P<pending>[\d,]+) wait for theirs; (?P<rejected>[\d,]+) rejected"
)


class BenchFailure(RuntimeError):
    """A check the bench makes on what it measures did not hold: the run fails."""


@dataclass
class Row:
    stage: str
    database: str
    count: str = "-"
    seconds: float | None = None
    rate: str = "-"
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mib: float | None = None
    note: str = ""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predicted - truth) ** 2)))


def check(condition: bool, what: str) -> None:
    if not condition:
        raise BenchFailure(what)


# ----- one database ----------------------------------------------------------------------------------


class Run:
    """The stages on one control plane."""

    def __init__(self, args: argparse.Namespace, work: Path, database: str, database_url: str | None) -> None:
        self.args = args
        self.work = work
        self.database = database
        self.server = ServerProcess(
            work / "cp", bootstrap_token=ADMIN, database_url=database_url, log_path=work / "server.log"
        )
        self.database_url = database_url or f"sqlite:///{work / 'cp' / 'deckhand.db'}"
        self.rows: list[Row] = []
        now_minute = int(time.time()) // 60 * 60
        self.start = now_minute - DAY_MINUTES * 60  # the 24 h all predictions fall in
        self.end = now_minute
        self.rss_note = ""
        self.cli_start = 0.0

    # -- helpers

    def _reset_rss(self) -> None:
        try:
            reset_peak_rss(self.server.pid)
        except OSError as exc:
            self.rss_note = f"peak RSS since the server's start (cannot reset it: {exc})"

    def _rss(self) -> float:
        return peak_rss_mib(self.server.pid)

    def _accuracy(self, client: ControlPlaneClient, dep: str) -> dict[str, Any]:
        return client.accuracy(dep, iso(self.start), iso(self.end), 3600)

    def _check_accuracy(self, report: dict[str, Any], truth: np.ndarray, predicted: np.ndarray, what: str) -> float:
        """The report's only model matched every row and its RMSE, MAE are numpy's: the RMSE difference."""
        models = report["models"]
        check(len(models) == 1, f"{what}: {len(models)} models in the accuracy report, expected 1")
        model = models[0]
        n = len(truth)
        check(model["matched"] == n, f"{what}: matched {model['matched']}, expected {n}")
        check(sum(b["matched"] for b in model["buckets"]) == n, f"{what}: the buckets do not add up to {n}")
        want_rmse, got_rmse = rmse(truth, predicted), model["metrics"]["rmse"]
        check(
            got_rmse is not None and abs(got_rmse - want_rmse) <= TOLERANCE,
            f"{what}: RMSE {got_rmse} but numpy's is {want_rmse:.9f}",
        )
        want_mae, got_mae = float(np.mean(np.abs(predicted - truth))), model["metrics"]["mae"]
        check(
            got_mae is not None and abs(got_mae - want_mae) <= TOLERANCE,
            f"{what}: MAE {got_mae} but numpy's is {want_mae:.9f}",
        )
        return abs(got_rmse - want_rmse)

    def _upload(self, csv_path: Path, dep: str) -> tuple[float, dict[str, int]]:
        """`deckhand actuals upload FILE --deployment ID` as a user runs it: seconds and its summary."""
        env = {**os.environ, "DECKHAND_URL": self.server.url, "DECKHAND_TOKEN": ADMIN}
        started = time.perf_counter()
        done = subprocess.run(
            [*DECKHAND, "actuals", "upload", str(csv_path), "--deployment", dep],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        seconds = time.perf_counter() - started
        found = UPLOAD_LINE.search(done.stdout)
        if done.returncode != 0 or found is None:
            raise BenchFailure(
                f"deckhand actuals upload exited with {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        return seconds, {k: int(v.replace(",", "")) for k, v in found.groupdict().items()}

    # -- stages

    def run(self) -> list[Row]:
        started = time.perf_counter()
        with self.server.start():
            boot = time.perf_counter() - started
            with ControlPlaneClient(self.server.url, ADMIN, timeout=300) as client:
                from deckhand.packages.demo import train_demo_package

                train_demo_package(self.work / "demo.dhpkg")
                package = client.upload_package(self.work / "demo.dhpkg")["id"]
                env = client.create_environment(name="bench", platform="test", monitoringEnabled=False)["id"]
                self._ingest(client, env, package)
                deps = self._evaluation(client, env, package)
                self._policies(client, deps)
        self.rows[0].note += f"; server started in {boot:.1f} s"
        if self.rss_note:
            self.rows[0].note += f"; {self.rss_note}"
        return self.rows

    def _ingest(self, client: ControlPlaneClient, env: str, package: str) -> None:
        n = self.args.actuals
        dep = client.create_deployment("ingest", env, package)["id"]
        rng = np.random.default_rng(20)
        truth = rng.normal(50, 10, n).round(4)
        predicted = (truth + rng.normal(0, 4, n)).round(4)
        ids = [f"row-{i:08d}" for i in range(n)]
        minutes = self.start + (np.arange(n) * DAY_MINUTES // n) * 60  # each row's minute, in order

        # predictions: scored items of one minute each, --batch-rows rows a request
        batches = []
        for first in range(0, n, self.args.batch_rows):
            last = min(n, first + self.args.batch_rows)
            cuts = [first, *(first + np.flatnonzero(np.diff(minutes[first:last])) + 1).tolist(), last]
            batches.append(
                [
                    scored_record(dep, "champion", ids[a:b], predicted[a:b].tolist(), timestamp=float(minutes[a]))
                    for a, b in zip(cuts, cuts[1:], strict=False)
                ]
            )
        self._reset_rss()
        t0 = time.perf_counter()
        for k, records in enumerate(batches):
            answer = client.post_monitoring_batch(f"predictions-{k}", records)
            check(
                answer["accepted"] == len(records) and not answer["unknownDeployments"],
                f"predictions batch {k}: {answer}",
            )
        seconds = time.perf_counter() - t0
        self.rows.append(
            Row("predictions load", self.database, f"{n:,} rows", seconds, f"{n / seconds:,.0f} rows/s",
                rss_mib=self._rss(),
                note=f"{len(batches)} POST /monitoring/batches of {self.args.batch_rows:,} rows "
                     f"(scored items, one per minute, {DAY_MINUTES} minutes)")
        )  # fmt: skip

        # actuals: a CSV file, then the CLI
        t0 = time.perf_counter()
        csv_path = self.work / "actuals.csv"
        with open(csv_path, "w", encoding="utf-8") as out:
            out.write("associationId,actualValue\n")
            values = truth.tolist()
            for first in range(0, n, 100_000):
                out.write("".join(f"{ids[i]},{values[i]!r}\n" for i in range(first, min(n, first + 100_000))))
        written = time.perf_counter() - t0
        size_mb = csv_path.stat().st_size / 1e6

        t0 = time.perf_counter()
        subprocess.run([*DECKHAND, "actuals", "upload", "--help"], capture_output=True, check=True, timeout=120)
        self.cli_start = time.perf_counter() - t0
        self._reset_rss()
        seconds, summary = self._upload(csv_path, dep)
        rss = self._rss()
        check(
            summary["received"] == n and summary["new"] == n and summary["matched"] == n,
            f"first upload: {summary}, expected {n} received, new and matched",
        )
        check(summary["rejected"] == 0 and summary["pending"] == 0, f"first upload: {summary}")
        t0 = time.perf_counter()
        report = self._accuracy(client, dep)
        query_ms = (time.perf_counter() - t0) * 1000
        delta = self._check_accuracy(report, truth, predicted, "after the upload")
        requests = math.ceil(n / 10_000)
        self.rows.append(
            Row("actuals upload", self.database, f"{n:,} rows", seconds, f"{n / seconds:,.0f} rows/s", rss_mib=rss,
                note=f"`deckhand actuals upload` ({requests} requests, CLI start included) of a {size_mb:.1f} MB "
                     f"CSV written in {written:.1f} s; checked: {n:,} new and matched, then RMSE = numpy's "
                     f"(off by {delta:.1e}), MAE too; that query: {query_ms:.0f} ms; the CLI's start alone "
                     f"(`--help`): {self.cli_start:.1f} s")
        )  # fmt: skip

        self._reset_rss()
        seconds, summary = self._upload(csv_path, dep)
        rss = self._rss()
        check(
            summary["received"] == n and summary["unchanged"] == n and summary["new"] == summary["updated"] == 0,
            f"re-send: {summary}, expected all {n} unchanged",
        )
        self._check_accuracy(self._accuracy(client, dep), truth, predicted, "after the re-send")
        self.rows.append(
            Row("actuals re-send", self.database, f"{n:,} rows", seconds, f"{n / seconds:,.0f} rows/s", rss_mib=rss,
                note="the same command and file: all unchanged (checked), accuracy the same")
        )  # fmt: skip
        csv_path.unlink()

    def _evaluation(self, client: ControlPlaneClient, env: str, package: str) -> list[str]:
        m = self.args.deployments
        self._reset_rss()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            deps = list(pool.map(lambda i: client.create_deployment(f"eval-{i}", env, package)["id"], range(m)))
        created = time.perf_counter() - t0
        rng = np.random.default_rng(21)
        truth = rng.normal(10, 3, (m, EVAL_ROWS)).round(4)
        predicted = (truth + rng.normal(0, 1, (m, EVAL_ROWS))).round(4)
        step = DAY_MINUTES // EVAL_ROWS  # one prediction every 14 minutes
        t1 = time.perf_counter()
        per_batch = max(1, 2000 // EVAL_ROWS)  # deployments a request: 2,000 predictions + their actuals
        for first in range(0, m, per_batch):
            records = []
            for k in range(first, min(m, first + per_batch)):
                ids = [f"e{k}-{j}" for j in range(EVAL_ROWS)]
                records += [
                    scored_record(deps[k], "champion", [ids[j]], [float(predicted[k, j])],
                                  timestamp=float(self.start + j * step * 60 + 30))
                    for j in range(EVAL_ROWS)
                ]  # fmt: skip
                records.append(
                    actuals_record(
                        deps[k],
                        [{"associationId": i, "actualValue": float(v)} for i, v in zip(ids, truth[k], strict=True)],
                    )
                )
            answer = client.post_monitoring_batch(f"eval-{first}", records)
            check(answer["accepted"] == len(records), f"evaluation batch {first}: {answer}")
        loaded = time.perf_counter() - t1
        rows = m * EVAL_ROWS
        self.rows.append(
            Row("evaluation setup", self.database, f"{m:,} deployments", created + loaded,
                f"{rows / loaded:,.0f} rows/s", rss_mib=self._rss(),
                note=f"{m:,} deployments created in {created:.1f} s; then {rows:,} predictions + actuals "
                     f"({EVAL_ROWS} a deployment, a minute every {step} over 24 h; 1-row scored items, as a "
                     f"prediction server reports 1-row requests) in {loaded:.1f} s, {per_batch} deployments a batch")
        )  # fmt: skip

        self._reset_rss()
        samples = []
        t0 = time.perf_counter()
        for k, dep in enumerate(deps):
            began = time.perf_counter()
            report = self._accuracy(client, dep)
            samples.append((time.perf_counter() - began) * 1000)
            self._check_accuracy(report, truth[k], predicted[k], f"deployment eval-{k}")
        seconds = time.perf_counter() - t0
        self.rows.append(
            Row("accuracy evaluation", self.database, f"{m:,} deployments", seconds, f"{m / seconds:,.0f} deps/s",
                p50_ms=statistics.median(samples), p99_ms=percentile(samples, 0.99), rss_mib=self._rss(),
                note=f"GET /deployments/ID/accuracy, 24 h in hourly buckets, one after another; each checked "
                     f"({EVAL_ROWS} matched, RMSE = numpy's); seconds include the checks")
        )  # fmt: skip
        return deps

    def _policies(self, client: ControlPlaneClient, deps: list[str]) -> None:
        """One round of the notification evaluator (the code the server's loop runs, on the same
        database) with a policy of each kind watching every deployment. The accuracy policy's
        condition holds for all of them (RMSE about 1 > 0.5): the first round queues one delivery
        each; the second, within the policies' interval, none."""
        from deckhand.server.db.session import Database
        from deckhand.server.services.notifications import engine

        m = len(deps)
        hook = {"name": "bench-hook", "kind": "webhook", "url": "http://127.0.0.1:9/closed"}
        channel = client.create_notification_channel(hook)["id"]
        kinds = {
            "service_health": {"metric": "errorRate", "threshold": 0.5},
            "accuracy": {"metric": "rmse", "threshold": 0.5},
            "drift": {"threshold": 0.2},
            "agent": {"silentMinutes": 10},
        }
        for kind, settings in kinds.items():
            policy = {"name": f"bench-{kind}", "kind": kind, "settings": settings, "channelIds": [channel]}
            client.create_notification_policy(policy)
        db = Database(self.database_url)
        try:
            rounds = []
            for _ in range(2):
                started = time.perf_counter()
                queued = engine.evaluate(db)
                rounds.append((time.perf_counter() - started, queued))
        finally:
            db.dispose()
        (first, fired), (second, again) = rounds
        # every evaluation deployment, and the ingest stage's (its RMSE is about 4)
        check(fired == m + 1, f"policy evaluation: the first round queued {fired} deliveries, expected {m + 1}")
        check(again == 0, f"policy evaluation: the second round queued {again}, expected none (min interval)")
        for label, seconds, queued in (("first", first, fired), ("second", second, again)):
            self.rows.append(
                Row(f"policy evaluation, {label} round", self.database, f"{m + 1:,} deployments", seconds,
                    f"{(m + 1) / seconds:,.0f} deps/s",
                    note=f"4 policies (service health, accuracy, drift, agent) over every deployment; {queued:,} "
                         "deliveries queued (RMSE above 0.5 everywhere"
                         + (")" if label == "first" else "; already notified within the interval)")
                         + "; engine.evaluate in this process on the server's database")
            )  # fmt: skip


# ----- table -------------------------------------------------------------------------------------------


def table(rows: list[Row]) -> list[str]:
    def number(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    lines = [
        "| stage | database | count | seconds | rate | p50 ms | p99 ms | server peak RSS MiB | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        cells = [r.stage, r.database, r.count, number(r.seconds, 2), r.rate, number(r.p50_ms, 1),
                 number(r.p99_ms, 1), number(r.rss_mib, 0), r.note.replace("|", "/")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actuals", type=int, help="N: predictions and actuals of the ingest (default 1,000,000)")
    parser.add_argument("--deployments", type=int, help="M: deployments of the evaluation (default 1,000)")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="predictions a monitoring batch")
    parser.add_argument(
        "--database", default="sqlite", help="sqlite, postgres, or both (sqlite,postgres): one server each"
    )
    parser.add_argument("--quick", action="store_true", help=f"small sizes: {QUICK['actuals']:,} actuals, "
                        f"{QUICK['deployments']} deployments (unless given)")  # fmt: skip
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"actuals": 1_000_000, "deployments": 1000}
    args.actuals = args.actuals or defaults["actuals"]
    args.deployments = args.deployments or defaults["deployments"]
    databases = [d.strip() for d in args.database.split(",") if d.strip()]
    if not databases or set(databases) - {"sqlite", "postgres"}:
        parser.error(f"--database: sqlite, postgres or sqlite,postgres, not {args.database!r}")
    if args.actuals < 1 or args.deployments < 1 or args.batch_rows < 1:
        parser.error("--actuals, --deployments and --batch-rows must be positive")
    # the CLI and server this script starts run the deckhand it imported
    src = str(Path(deckhand.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])

    command = shlex.join(["python", "bench/accuracy.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"command: {command}")
    print(f"sizes: {args.actuals:,} actuals, {args.deployments:,} deployments; databases: {', '.join(databases)}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    rows: list[Row] = []
    failed = None
    began = time.perf_counter()
    for database in databases:
        with ExitStack() as stack:
            work = Path(tempfile.mkdtemp(prefix=f"deckhand-bench-accuracy-{database}-"))
            stack.callback(shutil.rmtree, work, ignore_errors=True)
            url = None
            if database == "postgres":
                url, why = start_postgres(stack)
                if url is None:
                    rows.append(Row("all stages", database, note=f"skipped: {why}"))
                    print(f"postgres: skipped: {why}", file=sys.stderr)
                    continue
            run = Run(args, work, database, url)
            try:
                rows += run.run()
            except BenchFailure as exc:
                rows += run.rows  # the stages done before
                failed = f"{database}: {exc}"
                server_log = work / "server.log"
                tail = server_log.read_text(errors="replace")[-3000:] if server_log.exists() else ""
                print(f"FAILED on {database}: {exc}\nserver log (tail):\n{tail}", file=sys.stderr)
                break
    print()
    print("\n".join(table(rows)))
    how = {
        "sqlite": "SQLite: WAL, synchronous=NORMAL (deckhand's settings)",
        "postgres": "PostgreSQL: a throw-away cluster as the tests run it (fsync=off, synchronous_commit=off)",
    }
    print(
        f"\ncommand: {command}\ntotal {time.perf_counter() - began:.0f} s; load average {os.getloadavg()[0]:.2f} at "
        f"end on {os.cpu_count()} CPUs; " + "; ".join(how[d] for d in databases)
    )
    if failed:
        print(f"FAILED: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

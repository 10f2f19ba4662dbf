"""Monitoring benchmark: what monitoring costs the prediction server, and how fast the
tracking agent moves records into the control plane. Prints one table.

    python bench/monitoring.py                      # all rows
    python bench/monitoring.py --duration 10 --rounds 3 --records 500000

Rows:
  serve/off, serve/spool, serve/amqp   `deckhand serve --package` (1-row JSON requests,
        wrk, --connections), monitoring off / spool channel / RabbitMQ channel. The three
        servers stay up; each round loads every one once (in rotated order), and a mode's
        cost is taken against monitoring off in the same round: the median over rounds is
        shown with its range. On a shared machine a single pair moves by +-20%.
  serve/again a second server with monitoring off, loaded in the same rounds: the control.
        Its "cost" is what two identical servers differ by here -- the noise floor of the
        rows above.
  cost/hook   CPU microseconds monitoring adds on the event loop per request: counting the
        predicted labels in the server's per-request tally (everything else in it serves
        /metrics too, monitoring or not).
  cost/spool, cost/amqp   hook + the reporter threads' CPU per request, read per thread
        from /proc during the serve runs (drain, sketch, encode, publish), as a share of
        the server's CPU per request with monitoring off. The steady figure: it does not
        depend on what else the machine does in the seconds between two runs.
  agent/spool, agent/amqp   the tracking agent draining a pre-filled channel of raw
        records (statistics + 1 row of 4 features + a class prediction each, published
        with `Channel.publish`, so folded into columnar blocks) into a real control plane
        (`deckhand server`, SQLite): records per second, end to end (read, decode,
        aggregate, POST, server merge + commit, ack), and what publishing cost per record.
  agent/lines the same records written one JSON object per line, as a producer that does
        not use deckhand's encoder may write them (the agent reads both).
  agent/hook  the same, for what the prediction server's reporter publishes for N 1-row
        requests (counted as requests reaching the control plane's totals): per-minute
        aggregates of its statistics plus at most 20 feature samples a second.
Targets: monitoring costs <= 5% of 1-row throughput; the agent moves >= 50,000 records/s.
RabbitMQ rows need Debian's rabbitmq-server (scripts/setup/60-rabbitmq.sh); they are
reported as skipped otherwise. Every process started is stopped by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _ms(text: str) -> float:
    number = re.match(r"[\d.]+", text)
    if number is None:
        return float("nan")
    value = float(number.group())
    return value / 1000 if text.endswith("us") else value if text.endswith("ms") else value * 1000


def run_wrk(url: str, body: str, connections: int, duration: int, workdir: Path) -> tuple[float, float, int, int]:
    """(req/s, p99 ms, failed requests, requests) of one bounded wrk run posting `body`."""
    script = workdir / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\nwrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    if not rps or not p99:
        raise RuntimeError(f"cannot read wrk's output: {out[-400:]!r}")
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    done = re.search(r"(\d+) requests in", out)
    return float(rps.group(1)), _ms(p99.group(1)), errors, int(done.group(1)) if done else 0


TOKEN = "dh_bench-monitoring-admin-token-000"


@dataclass
class Row:
    name: str
    value: float
    unit: str
    note: str = ""


# ----- prediction server ------------------------------------------------------------------------


def thread_cpu_seconds(pgid: int) -> dict[str, float]:
    """CPU seconds of each thread of a process group's processes ("pid" for a main thread,
    "pid/tid" for the others): the prediction server's workers serve on their main
    thread, and the monitoring reporter is their only other busy thread."""
    seconds = {}
    hz = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/task/[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pid, tid = stat.parts[2], stat.parent.name
            seconds[pid if pid == tid else f"{pid}/{tid}"] = (int(fields[11]) + int(fields[12])) / hz
    return seconds


class Server:
    """`deckhand serve --package` with one monitoring spec, kept up for every round."""

    def __init__(self, package: Path, spec: str, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "deckhand.cli", "serve", "--package", str(package), "--port",
                   str(self.port), "--log-level", "warning", "--monitoring", spec]  # fmt: skip
        with open(workdir / "serve.log", "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, cwd=workdir)
        self.workdir = workdir

    def ready(self) -> None:
        wait_ready(self.url + "/ping", self.proc)
        run_wrk(self.url + "/predictions", json.dumps([ROW]), 16, 1, self.workdir)  # warm-up

    def load(self, connections: int, duration: int) -> tuple[float, float, float, float, int]:
        """(req/s, p99 ms, main-thread and other-thread CPU microseconds per request, worker
        processes that served) of one bounded wrk run."""
        before = thread_cpu_seconds(self.proc.pid)
        rps, p99, errors, done = run_wrk(self.url + "/predictions", json.dumps([ROW]), connections, duration,
                                         self.workdir)  # fmt: skip
        used = {k: v - before.get(k, 0.0) for k, v in thread_cpu_seconds(self.proc.pid).items()}
        if errors:
            raise RuntimeError(f"{errors} failed requests")
        main = {k: v for k, v in used.items() if "/" not in k}
        workers = sum(1 for v in main.values() if v > 0.1 * max(main.values()))  # not the supervisor
        per = 1e6 / max(done, 1)
        return rps, p99, sum(main.values()) * per, (sum(used.values()) - sum(main.values())) * per, workers

    def stop(self) -> None:
        stop(self.proc)


def sample_cost(package: Path, workdir: Path, calls: int = 2000) -> float:
    """Microseconds of one feature sample on the event loop (the request's first rows,
    handed to the reporter), the fastest of 5 blocks."""
    from deckhand.monitoring import MonitoringReporter
    from deckhand.packages import read_manifest
    from deckhand.serving import codecs

    batch = codecs.decode(json.dumps([ROW]).encode(), "application/json", read_manifest(package))
    reporter = MonitoringReporter(f"spool:{workdir / 'sample-cost'}", flush_interval=3600, max_buffer=10 * calls)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            reporter.report_features("deployment", "model", batch.head_records(10), 1e9)
        best = min(best, time.perf_counter() - started)
    reporter.close()  # publishes the samples: nothing left unsent
    return best / calls * 1e6


def hook_cost(blocks: int = 40, block: int = 50_000) -> float:
    """Microseconds monitoring adds to the per-request call on the event loop: the
    server's RequestTally.observe counting predicted labels (monitoring on) or not (off),
    interleaved blocks, the fastest of each (the least disturbed by the machine)."""
    from deckhand.serving.tally import RequestTally

    tallies = {False: RequestTally(count_predictions=False), True: RequestTally(count_predictions=True)}
    best = {False: float("inf"), True: float("inf")}
    chosen = ["setosa"]
    for i in range(blocks):
        for counting in (False, True) if i % 2 else (True, False):
            observe = tallies[counting].observe
            started = time.perf_counter()
            for _ in range(block):
                observe("default", "deployment", "model", 1e9, 200, 1, 0.0001, None, chosen)
            best[counting] = min(best[counting], time.perf_counter() - started)
            tallies[counting].drain()
    return (best[True] - best[False]) / block * 1e6


# ----- tracking agent ---------------------------------------------------------------------------


def raw_record(i: int, deployments: list[str]) -> dict[str, Any]:
    """Record i of a run: statistics + 1 row of 4 features + a class prediction."""
    from deckhand.monitoring.records import data_record, stats_record

    dep = deployments[i % len(deployments)]
    record = stats_record(dep, "iris", 1, 0.4 + (i % 97) / 50, user_errors=int(i % 100 == 0))
    record.update(
        data_record(
            dep, "iris", [{**ROW, "sepal_length": 4.5 + (i % 31) / 10}], [("setosa", "versicolor", "virginica")[i % 3]]
        )
    )
    return record


def fill_channel(spec: str, records: int, deployments: list[str]) -> float:
    """Publish raw records (statistics + 1 row of 4 features + a class prediction each, the
    heaviest record a reporter sends) in channel messages of 2,000; returns seconds taken."""
    from deckhand.monitoring.channels import channel_from_spec

    started = time.perf_counter()
    channel = channel_from_spec(spec)
    batch: list[dict] = []
    for i in range(records):
        batch.append(raw_record(i, deployments))
        if len(batch) == 2000:
            channel.publish(batch)
            batch = []
    if batch:
        channel.publish(batch)
    channel.close()
    return time.perf_counter() - started


def fill_spool_lines(spec: str, records: int, deployments: list[str]) -> float:
    """The same raw records written straight into spool files one JSON object per line, as
    any producer that does not use deckhand's encoder may; returns seconds taken."""
    from deckhand.monitoring.channels.spool import SUFFIX

    directory = Path(spec.partition(":")[2].partition("?")[0])
    directory.mkdir(parents=True, exist_ok=True)
    import orjson

    started = time.perf_counter()
    for first in range(0, records, 2000):
        lines = b"".join(
            orjson.dumps(raw_record(i, deployments)) + b"\n" for i in range(first, min(first + 2000, records))
        )
        tmp = directory / f".{first:012d}.tmp"
        tmp.write_bytes(lines)
        tmp.rename(directory / f"{time.time_ns():020d}-{first:012d}{SUFFIX}")
    return time.perf_counter() - started


def fill_channel_from_server_hook(spec: str, records: int, deployments: list[str]) -> float:
    """What prediction servers publish for `records` 1-row requests: the MonitoringReporter
    behind `deckhand serve --monitoring` (per-minute statistics, feature samples at its rate
    limit); returns seconds taken."""
    from deckhand.monitoring import MonitoringReporter

    started = time.perf_counter()
    reporter = MonitoringReporter(spec)
    interval, next_sample_at = 1.0 / reporter.feature_samples_per_second, 0.0
    for i in range(records):  # each request as the server counts it, and its feature samples
        now = time.time()
        deployment = deployments[i % len(deployments)]
        label = ("setosa", "versicolor", "virginica")[i % 3]
        reporter.count_request(deployment, "iris", now, 1, 0.4 + (i % 97) / 50, None, [label])
        if now >= next_sample_at:
            reporter.report_features(deployment, "iris", [ROW], now)
            next_sample_at = now + interval
    if not reporter.flush(300):
        raise RuntimeError(f"could not publish: {reporter.stats()}")
    reporter.close()
    return time.perf_counter() - started


def agent_throughput(
    spec: str, server_url: str, records: int, deployments: list[str], batch_size: int, fill: Any = None
) -> tuple[float, float]:
    """Records per second the tracking agent moves from a pre-filled channel into the control
    plane, and the publishers' microseconds per record (building, encoding, writing)."""
    from deckhand.client.control_plane import ControlPlaneClient
    from deckhand.monitoring.channels import channel_from_spec
    from deckhand.monitoring.tracking_agent import TrackingAgent

    client = ControlPlaneClient(server_url, TOKEN, timeout=120)
    before = sum(client.service_health(d)["totals"]["requests"] for d in deployments)
    fill_seconds = (fill or fill_channel)(spec, records, deployments)
    agent = TrackingAgent(channel_from_spec(spec), client, batch_size=batch_size, flush_interval=0.2)
    started = time.perf_counter()
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 600
    while agent.counters.records < records and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    agent.stop_event.set()
    thread.join(30)
    after = sum(client.service_health(d)["totals"]["requests"] for d in deployments)
    client.close()
    if after - before != records:
        raise RuntimeError(f"control plane counted {after - before} of {records} records")
    return records / elapsed, fill_seconds / records * 1e6


def serving_rows(runs: dict[str, list[tuple[float, ...]]], why_no_rabbit: str | None) -> list[Row]:
    """One row per mode: medians over the rounds, and each mode's cost against monitoring
    off *in the same round* (median and range), which cancels most of a noisy machine."""
    out = []
    off = runs["off"]
    for mode in ("off", "again", "spool", "amqp"):
        if not runs.get(mode):
            out.append(Row(f"serve/{mode}", 0, "req/s", why_no_rabbit or "failed (see stderr)"))
            continue
        results = runs[mode]
        rps, p99, main, other, _ = (statistics.median(column) for column in zip(*results, strict=True))
        note = f"median of {len(results)}: p99 {p99:.2f} ms, server CPU {main + other:.0f} us/request"
        if mode == "again":
            note = "control, monitoring off too: " + note
        if mode != "off":
            rps_cost = sorted(100 * (1 - r[0] / o[0]) for r, o in zip(results, off, strict=True))
            note += (
                f"; cost vs off in the same round: {statistics.median(rps_cost):+.1f}% req/s "
                f"({rps_cost[0]:+.1f}..{rps_cost[-1]:+.1f})"
            )
        out.append(Row(f"serve/{mode}", rps, "req/s", note))
    return out


def setup_control_plane(workdir: Path, package: Path, n: int) -> tuple[object, list[str]]:
    from deckhand.client.control_plane import ControlPlaneClient
    from deckhand.server.testing import ServerProcess

    server = ServerProcess(workdir / "cp", bootstrap_token=TOKEN, log_path=workdir / "cp.log")
    server.start()
    with ControlPlaneClient(server.url, TOKEN) as client:
        env = client.create_environment(name="bench", platform="test")
        uploaded = client.upload_package(package)
        ids = [
            client.create_deployment(name=f"d{i}", environment_id=env["id"], model_package_id=uploaded["id"])["id"]
            for i in range(n)
        ]
    return server, ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of every serving mode (medians kept)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--records", type=int, default=300_000, help="records per tracking-agent run")
    parser.add_argument("--deployments", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=50_000, help="tracking agent --batch-size")
    parser.add_argument("--skip-serving", action="store_true")
    parser.add_argument("--skip-agent", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if not args.skip_serving and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    from deckhand.monitoring.testing import RabbitMQBroker, rabbitmq_available
    from deckhand.packages.demo import train_demo_package

    workdir = Path(tempfile.mkdtemp(prefix="deckhand-bench-monitoring-"))
    package = workdir / "demo.dhpkg"
    train_demo_package(package)
    broker = None
    why_no_rabbit = rabbitmq_available()
    if why_no_rabbit is None:
        broker = RabbitMQBroker(workdir / "rabbitmq")
        broker.start()
    rows: list[Row] = []
    try:
        if not args.skip_serving:
            # "again": a second server with monitoring off, the control that shows how far two
            # identical servers drift apart on this machine
            modes = {"off": "off", "again": "off", "spool": f"spool:{workdir / 'serve-spool'}"}
            if broker is not None:
                modes["amqp"] = broker.spec(queue="bench-serve")
            servers = {mode: Server(package, spec, workdir) for mode, spec in modes.items()}
            runs: dict[str, list[tuple[float, ...]]] = {mode: [] for mode in modes}
            try:
                for server in servers.values():
                    server.ready()
                order = list(modes)
                for round_ in range(args.rounds):
                    rotated = order[round_ % len(order) :] + order[: round_ % len(order)]  # no mode always first
                    for mode in rotated:
                        runs[mode].append(servers[mode].load(args.connections, args.duration))
            finally:
                for server in servers.values():
                    server.stop()
            rows.extend(serving_rows(runs, why_no_rabbit))
            server_cpu = statistics.median(r[2] + r[3] for r in runs["off"])
            from deckhand.monitoring.reporter import DEFAULT_FEATURE_SAMPLES_PER_SECOND as SAMPLES_PER_SECOND

            hook_us, one_sample_us = hook_cost(), sample_cost(package, workdir)
            rows.append(Row("cost/hook", hook_us, "us CPU/req",
                            "counting predicted labels in the per-request tally on the event loop "
                            "(in-process, interleaved blocks, fastest of each)"))  # fmt: skip
            for mode in modes:
                if mode in ("off", "again"):
                    continue
                thread_us = statistics.median(r[3] for r in runs[mode]) - statistics.median(r[3] for r in runs["off"])
                workers = max(r[4] for r in runs[mode])
                # each worker samples 20 requests a second: spread over the requests it serves
                sampling_us = one_sample_us * SAMPLES_PER_SECOND * workers / statistics.median(r[0] for r in runs[mode])
                total = hook_us + sampling_us + thread_us
                rows.append(
                    Row(
                        f"cost/{mode}",
                        total,
                        "us CPU/req",
                        f"= hook {hook_us:.2f} + feature samples {sampling_us:.2f} ({one_sample_us:.0f} us each, "
                        f"{SAMPLES_PER_SECOND}/s in each of {workers} workers) + reporter threads "
                        f"{thread_us:.2f} (in the serve/{mode} runs, /proc per thread) = "
                        f"{100 * total / server_cpu:.1f}% of the server's CPU per request with monitoring off "
                        f"({server_cpu:.0f} us)",
                    )
                )
        if not args.skip_agent:
            server, deployments = setup_control_plane(workdir, package, args.deployments)
            try:
                runs: list[tuple[str, str | None, Any, str]] = [
                    ("agent/spool", f"spool:{workdir / 'agent-spool'}?maxFiles=100000", fill_channel, "raw records"),
                    ("agent/amqp", broker.spec(queue="bench-agent") if broker else None, fill_channel, "raw records"),
                    ("agent/lines", f"spool:{workdir / 'agent-lines'}?maxFiles=100000", fill_spool_lines,
                     "raw records one per JSON line, as a third-party producer may write them"),
                    ("agent/hook", f"spool:{workdir / 'agent-spool-hook'}", fill_channel_from_server_hook,
                     "prediction-server requests (statistics pre-aggregated by the server's reporter, "
                     "feature samples at 20/s)"),
                ]  # fmt: skip
                for name, spec, fill, what in runs:
                    if spec is None:
                        rows.append(Row(name, 0, "records/s", f"skipped: {why_no_rabbit}"))
                        continue
                    rate, publish_us = agent_throughput(
                        spec,
                        server.url,
                        args.records,
                        deployments,
                        args.batch_size,
                        fill,  # type: ignore[attr-defined]
                    )
                    note = (
                        f"{args.records} {what}, {args.deployments} deployments; publishing {publish_us:.1f} us/record"
                    )
                    rows.append(Row(name, rate, "records/s", note))
            finally:
                server.stop()  # type: ignore[attr-defined]
    finally:
        if broker is not None:
            broker.close()
    print(
        f"\nload average at end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
        f"serving: {args.connections} connections, {args.duration}s x {args.rounds} rounds, 1-row JSON\n"
    )
    print(f"{'row':<14} {'value':>12} {'unit':<11} note")
    for r in rows:
        value = f"{r.value:>12,.1f}" if r.value < 100 else f"{r.value:>12,.0f}"
        print(f"{r.name:<14} {value} {r.unit:<11} {r.note}")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Monitoring benchmark: what monitoring costs the prediction server, and how fast the
tracking agent moves records into the control plane. Prints one table.

    python bench/monitoring.py                      # all rows
    python bench/monitoring.py --duration 10 --rounds 3 --records 500000

Rows:
  serve/off, serve/spool, serve/amqp   `deckhand serve --package` (1-row JSON requests,
        wrk, --connections), monitoring off / spool channel / RabbitMQ channel. Rounds
        are interleaved (off, spool, amqp, off, ...) and the best round of each is kept,
        so a noisy neighbour on a shared machine hurts every mode alike.
  hook/spool, hook/amqp   CPU microseconds the monitoring hook adds per 1-row request,
        measured in-process (getrusage over 30,000 calls + publishing), compared with
        the server's CPU per request with monitoring off (from /proc during serve/off).
  agent/spool, agent/amqp   the tracking agent draining a pre-filled channel of raw
        records (statistics + 1 row of 4 features + a class prediction each) into a real
        control plane (`deckhand server`, SQLite): records per second, end to end (read,
        decode, aggregate, POST, server merge + commit, ack). The prediction server's own
        reporter sends far less: per-minute aggregates of its statistics plus at most 20
        feature samples a second, so for it this is a floor.
  agent/hook  the same, for what the prediction server's reporter publishes for N 1-row
        requests (counted as requests reaching the control plane's totals).
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


def group_cpu_seconds(pgid: int) -> float:
    """user+system CPU seconds of every process in a process group (from /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state ppid pgrp ... utime(11) stime(12)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


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


def serve_throughput(
    package: Path, spec: str, connections: int, duration: int, workdir: Path
) -> tuple[float, float, float]:
    """(req/s, p99 ms, server CPU microseconds per request) of one wrk run against
    `deckhand serve --package` with this monitoring spec. CPU per request (all the
    server's threads, from /proc) is what monitoring adds; it is far less sensitive to
    other load on a shared machine than req/s."""
    port = free_port()
    body = json.dumps([ROW])
    command = [sys.executable, "-m", "deckhand.cli", "serve", "--package", str(package), "--port", str(port),
               "--log-level", "warning", "--monitoring", spec]  # fmt: skip
    with open(workdir / "serve.log", "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/ping", proc)
        run_wrk(url + "/predictions", body, connections, 1, workdir)  # warm-up
        cpu_before = group_cpu_seconds(proc.pid)
        rps, p99, errors, done = run_wrk(url + "/predictions", body, connections, duration, workdir)
        cpu = group_cpu_seconds(proc.pid) - cpu_before
        if errors:
            raise RuntimeError(f"{errors} failed requests")
        return rps, p99, cpu / max(done, 1) * 1e6
    finally:
        stop(proc)


def hook_cpu_per_request(package: Path, spec: str, requests: int = 30_000) -> float:
    """CPU microseconds (all threads of this process) the monitoring hook adds to one
    1-row request: the server's `_report` (record, labels, feature sampling) plus the
    reporter's background publishing, measured in-process with getrusage, so that other
    load on the machine barely moves it."""
    import asyncio
    import resource

    from deckhand.serving import codecs
    from deckhand.serving.app import create_app
    from deckhand.serving.config import ServeConfig

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    app = create_app(ServeConfig(package=package, monitoring=spec))
    asyncio.run(app.startup())
    try:
        entry = list(app.repository.entries())[0]
        serving = entry.current
        batch = codecs.decode(json.dumps([ROW]).encode(), "application/json", serving.manifest)
        predictions = asyncio.run(serving.batcher.predict(batch))
        started = cpu()
        for _ in range(requests):
            app._report(entry, serving, batch, predictions, 1, 0.001, 200, None)
        assert app.reporter is not None and app.reporter.flush(60)
        return (cpu() - started) / requests * 1e6
    finally:
        app.shutdown()


# ----- tracking agent ---------------------------------------------------------------------------


def fill_channel(spec: str, records: int, deployments: list[str]) -> float:
    """Publish raw records (statistics + 1 row of 4 features + a class prediction each, the
    heaviest record a reporter sends) in channel messages of 2,000; returns seconds taken."""
    from deckhand.monitoring import records as R
    from deckhand.monitoring.channels import channel_from_spec

    started = time.perf_counter()
    channel = channel_from_spec(spec)
    batch: list[dict] = []
    for i in range(records):
        dep = deployments[i % len(deployments)]
        record = R.stats_record(dep, "iris", 1, 0.4 + (i % 97) / 50, user_errors=int(i % 100 == 0))
        record.update(
            R.data_record(
                dep,
                "iris",
                [{**ROW, "sepal_length": 4.5 + (i % 31) / 10}],
                [("setosa", "versicolor", "virginica")[i % 3]],
            )
        )
        batch.append(record)
        if len(batch) == 2000:
            channel.publish(batch)
            batch = []
    if batch:
        channel.publish(batch)
    channel.close()
    return time.perf_counter() - started


def fill_channel_from_server_hook(spec: str, records: int, deployments: list[str]) -> float:
    """What prediction servers publish for `records` 1-row requests: the MonitoringReporter
    behind `deckhand serve --monitoring` (per-minute statistics, feature samples at its rate
    limit); returns seconds taken."""
    from deckhand.monitoring import MonitoringReporter
    from deckhand.serving.hooks import PredictionRecord

    started = time.perf_counter()
    reporter = MonitoringReporter(spec)
    for i in range(records):
        reporter.submit(
            PredictionRecord(
                deployment_id=deployments[i % len(deployments)],
                model_id="iris",
                rows=1,
                latency_ms=0.4 + (i % 97) / 50,
                status_code=200,
                predictions=[("setosa", "versicolor", "virginica")[i % 3]],
                feature_sample=[ROW] if reporter.wants_feature_sample() else [],
            )
        )
    if not reporter.flush(300):
        raise RuntimeError(f"could not publish: {reporter.stats()}")
    reporter.close()
    return time.perf_counter() - started


def agent_throughput(
    spec: str, server_url: str, records: int, deployments: list[str], batch_size: int, fill: Any = None
) -> float:
    """Records per second the tracking agent moves from a pre-filled channel into the control plane."""
    from deckhand.client.control_plane import ControlPlaneClient
    from deckhand.monitoring.channels import channel_from_spec
    from deckhand.monitoring.tracking_agent import TrackingAgent

    client = ControlPlaneClient(server_url, TOKEN, timeout=120)
    before = sum(client.service_health(d)["totals"]["requests"] for d in deployments)
    (fill or fill_channel)(spec, records, deployments)
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
    return records / elapsed


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
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per serving mode (best kept)")
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
            modes = {"off": "off", "spool": f"spool:{workdir / 'serve-spool'}"}
            if broker is not None:
                modes["amqp"] = broker.spec(queue="bench-serve")
            best: dict[str, tuple[float, float]] = {}
            cpu: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for mode, spec in modes.items():
                    try:
                        rps, p99, us = serve_throughput(package, spec, args.connections, args.duration, workdir)
                    except Exception as exc:
                        print(f"serve/{mode}: failed: {exc}", file=sys.stderr)
                        continue
                    cpu.setdefault(mode, []).append(us)
                    if rps > best.get(mode, (0.0, 0.0))[0]:
                        best[mode] = (rps, p99)
            base = best.get("off", (0.0, 0.0))[0]
            base_cpu = min(cpu.get("off", [0.0]))
            for mode in ("off", "spool", "amqp"):
                if mode not in best:
                    rows.append(Row(f"serve/{mode}", 0, "req/s", why_no_rabbit or "failed (see stderr)"))
                    continue
                rps, p99 = best[mode]
                us = min(cpu[mode])
                note = f"p99 {p99:.2f} ms; server CPU {us:.0f} us/request"
                if mode != "off" and base and base_cpu:
                    cost_rps, cost_cpu = 100 * (1 - rps / base), 100 * (us / base_cpu - 1)
                    note += f"; cost vs off: {cost_rps:+.1f}% req/s, {cost_cpu:+.1f}% CPU/request"
                rows.append(Row(f"serve/{mode}", rps, "req/s", note))
            for mode, spec in modes.items():
                if mode == "off":
                    continue
                us = min(hook_cpu_per_request(package, spec) for _ in range(args.rounds))
                share = (
                    f" = {100 * us / base_cpu:.1f}% of a request's server CPU with monitoring off" if base_cpu else ""
                )
                rows.append(Row(f"hook/{mode}", us, "us CPU/req", f"in-process, best of {args.rounds}{share}"))
        if not args.skip_agent:
            server, deployments = setup_control_plane(workdir, package, args.deployments)
            try:
                spec = f"spool:{workdir / 'agent-spool'}?maxFiles=100000"
                rate = agent_throughput(spec, server.url, args.records, deployments, args.batch_size)  # type: ignore[attr-defined]
                rows.append(
                    Row("agent/spool", rate, "records/s", f"{args.records} records, {args.deployments} deployments")
                )
                if broker is not None:
                    rate = agent_throughput(
                        broker.spec(queue="bench-agent"),
                        server.url,
                        args.records,
                        deployments,
                        args.batch_size,  # type: ignore[attr-defined]
                    )
                    rows.append(
                        Row("agent/amqp", rate, "records/s", f"{args.records} records, {args.deployments} deployments")
                    )
                else:
                    rows.append(Row("agent/amqp", 0, "records/s", f"skipped: {why_no_rabbit}"))
                spec = f"spool:{workdir / 'agent-spool-hook'}"
                rate = agent_throughput(
                    spec, server.url, args.records, deployments, args.batch_size, fill_channel_from_server_hook
                )
                rows.append(
                    Row(
                        "agent/hook",
                        rate,
                        "records/s",
                        f"{args.records} prediction-server requests via spool (statistics pre-aggregated "
                        "by the server's reporter, feature samples at 20/s)",
                    )
                )
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

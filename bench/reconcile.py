"""How fast the agent makes the control plane's desired state real, with real processes.

    python bench/reconcile.py [--deployments 1000] [--parallelism 16] [--database-url URL]

Starts `deckhand server` (SQLite in a temp dir, or PostgreSQL by URL) and `deckhand agent`
for one `local` environment (filesystem plugin + one multi-model prediction server), then
measures:
- the quickstart: `deckhand quickstart --exit-after-demo`, command start to first prediction;
- one new deployment: created -> answers a prediction (median of 5);
- N deployments created at once: seconds until all are reported ready, and until every one
  answers a prediction;
- the agent's CPU while nothing changes (and the prediction server's), over 30 s;
- the desired-state call with N deployments: p50 and p99 of 200 calls.
Prints one table with the issue's targets beside the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from deckhand.agent.testing import AgentProcess, write_agent_config
from deckhand.client import ControlPlaneClient
from deckhand.packages.demo import sample_rows, train_demo_package
from deckhand.server.testing import ServerProcess

ADMIN = "dh_bench-reconcile-admin-token-0123456789"
ROWS = sample_rows(1)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def quickstart_seconds(work: Path) -> float:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "deckhand.cli", "quickstart", "--exit-after-demo", "--data-dir", str(work)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"quickstart failed:\n{proc.stdout}\n{proc.stderr}")
    match = re.search(r"first prediction after ([0-9.]+) s", proc.stdout)
    return float(match.group(1)) if match else time.monotonic() - start


class Bench:
    def __init__(self, work: Path, deployments: int, parallelism: int, database_url: str | None) -> None:
        self.work = work
        self.count = deployments
        self.server = ServerProcess(work / "cp", bootstrap_token=ADMIN, database_url=database_url)
        self.parallelism = parallelism
        self.http = httpx.Client(timeout=30)

    def run(self) -> list[tuple[str, str, str]]:
        rows: list[tuple[str, str, str]] = []
        quickstart = quickstart_seconds(self.work / "qs")
        rows.append(("quickstart: command -> first prediction", f"{quickstart:.1f} s", "20 s"))
        with self.server:
            admin = ControlPlaneClient(self.server.url, ADMIN, timeout=60)
            train_demo_package(self.work / "iris.dhpkg")
            package = admin.upload_package(self.work / "iris.dhpkg")
            env = admin.create_environment(name="bench", platform="local", monitoringEnabled=False)
            token = admin.create_token("agent-bench", "agent", [env["id"]])["token"]
            config = write_agent_config(
                self.work / "agent.yaml",
                url=self.server.url,
                token=token,
                work_dir=self.work / "agent",
                environments=[{"id": env["id"]}],
                parallelism=self.parallelism,
                resyncIntervalSeconds=10,
                longPollSeconds=30,
            )
            agent = AgentProcess(config, self.work / "agent", log_level="WARNING")
            (self.work / "agent").mkdir(parents=True, exist_ok=True)
            with agent:
                self._wait_agent_up(admin, env["id"])
                singles = [self._one_deployment(admin, env["id"], package["id"], i) for i in range(5)]
                single = f"{statistics.median(singles):.2f} s (median of 5, max {max(singles):.2f})"
                rows.append(("one new deployment: created -> answers", single, "2 s"))
                ready_s, answer_s = self._many(admin, env["id"], package["id"])
                rows.append((f"{self.count} deployments: created -> all ready", f"{ready_s:.1f} s", ""))
                rows.append((f"{self.count} deployments: created -> all answer", f"{answer_s:.1f} s", "60 s"))
                agent_cpu, server_cpu = self._idle_cpu(agent.pid, env["id"])
                rows.append(("idle agent CPU (30 s, nothing changes)", f"{agent_cpu:.2f} % of a core", "1 %"))
                rows.append(("idle prediction server CPU (same 30 s)", f"{server_cpu:.2f} % of a core", ""))
                p50, p99 = self._desired_state_latency(admin, env["id"], token)
                latency = f"p50 {p50:.0f} ms, p99 {p99:.0f} ms"
                rows.append((f"desired-state call, {self.count} deployments", latency, ""))
        return rows

    def _wait_agent_up(self, admin: ControlPlaneClient, env_id: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e["action"] == "plugin_start" for e in admin.list_events(environment_id=env_id)):
                return
            time.sleep(0.2)
        raise TimeoutError("agent did not start its environment")

    def _answers(self, url: str | None) -> bool:
        if not url:
            return False
        try:
            return self.http.post(url, json=ROWS).status_code == 200
        except httpx.HTTPError:
            return False

    def _one_deployment(self, admin: ControlPlaneClient, env_id: str, package_id: str, i: int) -> float:
        start = time.monotonic()
        dep = admin.create_deployment(f"single-{i}", env_id, package_id)
        while time.monotonic() - start < 60:
            observed = admin.get_deployment(dep["id"]).get("observed") or {}
            if observed.get("state") == "ready" and self._answers(observed.get("predictionUrl")):
                return time.monotonic() - start
            time.sleep(0.02)
        raise TimeoutError(f"deployment {dep['id']} not answering after 60 s")

    def _many(self, admin: ControlPlaneClient, env_id: str, package_id: str) -> tuple[float, float]:
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            ids = list(
                pool.map(lambda i: admin.create_deployment(f"bulk-{i}", env_id, package_id)["id"], range(self.count))
            )
        print(f"created {len(ids)} deployments in {time.monotonic() - start:.1f} s", file=sys.stderr)
        pending = set(ids)
        urls: dict[str, str] = {}
        ready_at = None
        while time.monotonic() - start < 900:
            for dep in admin.list_deployments(env_id):
                observed = dep.get("observed") or {}
                if dep["id"] in pending and observed.get("state") == "ready":
                    pending.discard(dep["id"])
                    urls[dep["id"]] = observed["predictionUrl"]
            if not pending:
                ready_at = time.monotonic() - start
                break
            time.sleep(0.5)
        if ready_at is None:
            raise TimeoutError(f"{len(pending)} of {self.count} deployments not ready after 900 s")
        with ThreadPoolExecutor(8) as pool:
            failed = [dep for dep, ok in zip(urls, pool.map(self._answers, urls.values()), strict=True) if not ok]
        if failed:
            raise AssertionError(f"{len(failed)} ready deployments did not answer, e.g. {failed[:3]}")
        return ready_at, time.monotonic() - start

    def _idle_cpu(self, agent_pid: int, env_id: str, seconds: float = 30.0) -> tuple[float, float]:
        server_pid = int(next((self.work / "agent").rglob("prediction-server.pid")).read_text().split("\n")[0])
        time.sleep(2)  # let the last status report go out
        a0, s0, t0 = cpu_seconds(agent_pid), cpu_seconds(server_pid), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        return (
            100 * (cpu_seconds(agent_pid) - a0) / elapsed,
            100 * (cpu_seconds(server_pid) - s0) / elapsed,
        )

    def _desired_state_latency(self, admin: ControlPlaneClient, env_id: str, token: str) -> tuple[float, float]:
        agent = ControlPlaneClient(self.server.url, token, timeout=60)
        samples = []
        for _ in range(200):
            start = time.perf_counter()
            state = agent.desired_state(env_id, revision=None, timeout=0)
            samples.append((time.perf_counter() - start) * 1000)
        assert len(state["deployments"]) >= self.count
        return statistics.median(samples), percentile(samples, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=16, help="agent actions in parallel")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deckhand-bench-reconcile-") as tmp:
        rows = Bench(Path(tmp), args.deployments, args.parallelism, args.database_url).run()
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'result':<{value_width}}  target")
    print(f"{'-' * width}  {'-' * value_width}  ------")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {target}")
    print(
        f"\nagent parallelism {args.parallelism}; {'PostgreSQL' if args.database_url else 'SQLite'}; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()

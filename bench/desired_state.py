"""How long the agent's most frequent call takes: the desired state of one environment.

    python bench/desired_state.py [--deployments 1000] [--canaries 50] [--challengers 50] [--database-url URL]

Starts `deckhand server` (SQLite in a temp dir, or PostgreSQL by URL), creates N deployments
in one environment, gives `--canaries` of them a running canary and `--challengers` of them
a challenger (so the traffic part of the desired state is exercised), then times 200
desired-state calls with an agent token: p50 and p99. No agent, no prediction server: this
isolates the control plane's query (bench/reconcile.py measures the whole loop).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deckhand.client import ControlPlaneClient
from deckhand.packages.demo import train_demo_package
from deckhand.server.testing import ServerProcess

ADMIN = "dh_bench-desired-admin-token-0123456789"
CALLS = 200


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(work: Path, count: int, canaries: int, challengers: int, database_url: str | None) -> tuple[float, float]:
    with ServerProcess(work / "cp", bootstrap_token=ADMIN, database_url=database_url) as server:
        admin = ControlPlaneClient(server.url, ADMIN, timeout=60)
        train_demo_package(work / "a.dhpkg")
        train_demo_package(work / "b.dhpkg", seed=1)
        champion = admin.upload_package(work / "a.dhpkg")["id"]
        other = admin.upload_package(work / "b.dhpkg")["id"]
        env = admin.create_environment(name="bench", platform="test", monitoringEnabled=False)
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: admin.create_deployment(f"d-{i}", env["id"], champion)["id"], range(count)))
            list(pool.map(lambda d: admin.start_canary(d, other, {"percent": 10}), ids[:canaries]))
            list(pool.map(lambda d: admin.add_challenger(d, other), ids[canaries : canaries + challengers]))
        agent = ControlPlaneClient(server.url, admin.create_token("agent-bench", "agent", [env["id"]])["token"])
        samples = []
        for _ in range(CALLS):
            start = time.perf_counter()
            state = agent.desired_state(env["id"], revision=None, timeout=0)
            samples.append((time.perf_counter() - start) * 1000)
        assert len(state["deployments"]) == count
        return statistics.median(samples), percentile(samples, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--canaries", type=int, default=0, help="deployments with a running canary")
    parser.add_argument("--challengers", type=int, default=0, help="deployments with one challenger")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deckhand-bench-desired-") as tmp:
        p50, p99 = run(Path(tmp), args.deployments, args.canaries, args.challengers, args.database_url)
    print(
        f"desired-state call, {args.deployments} deployments ({args.canaries} canaries, "
        f"{args.challengers} with a challenger; {'PostgreSQL' if args.database_url else 'SQLite'}): "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms over {CALLS} calls",
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()

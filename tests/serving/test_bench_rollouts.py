"""bench/rollouts.py: its verdict on the challengers' p99 goal (a confidence interval of the
median ratio, never a single round's luck), and a short run end to end that prints every
server of the table and the goal's lines. The figures themselves are not judged here."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "rollouts.py"


def _bench_module():
    """The script as a module, sys.path and sys.modules left as they were (it puts
    bench/serving first on the path to import that bench's `run_wrk`)."""
    path, had_bench = list(sys.path), "bench" in sys.modules
    spec = importlib.util.spec_from_file_location("bench_rollouts", BENCH)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
        if not had_bench:
            sys.modules.pop("bench", None)
    return module


@pytest.mark.parametrize(
    ("n", "ranks"),
    # the order statistics of the published 95 % confidence intervals of a median
    [(6, (1, 6)), (9, (2, 8)), (10, (2, 9)), (15, (4, 12)), (20, (6, 15)), (25, (8, 18)), (40, (14, 27))],
)
def test_median_interval_is_the_distribution_free_one(n: int, ranks: tuple[int, int]) -> None:
    values = [float(i) for i in range(n, 0, -1)]  # unsorted on purpose: the k-th smallest is k
    assert _bench_module().median_interval(values) == tuple(map(float, ranks))


def test_a_verdict_needs_the_whole_interval_on_one_side_of_the_goal() -> None:
    bench = _bench_module()
    verdict = bench.verdict
    assert verdict(0.9, 1.08, 1.10, 15) == "met"
    assert verdict(1.12, 1.4, 1.10, 15) == "MISSED"
    assert verdict(0.95, 1.2, 1.10, 15).startswith("not settled")  # a median below the goal is not enough
    # under 6 rounds no interval reaches 95 %: the whole range is no verdict, however narrow
    assert bench.median_interval([0.91] * 5) == (0.91, 0.91)
    assert verdict(0.91, 0.91, 1.10, 5) == "not settled: 5 rounds give no 95 % interval, 6 do"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk: scripts/setup/30-serving.sh installs it")
def test_bench_smoke() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rounds", "2", "--duration", "1", "--conns", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "command: python bench/rollouts.py --duration 1 --rounds 2 --conns 1" in out
    rows = re.findall(r"^(.+?)\s+1\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+ %|-)$", out, re.MULTILINE)
    servers = [
        "champion alone",
        "champion again",
        "canary 10 %",
        "3 challengers",
        "3 chall., all",
        "3 chall., all, 10 %",
    ]
    assert [r[0] for r in rows] == servers, out
    for _, rps, p50, p99, _ratio, _copied in rows:
        assert int(rps) > 0 and 0 < float(p50) <= float(p99)
    copied = [r[5] for r in rows][3:]
    assert copied[:2] == ["100 %", "100 %"], out  # one client: every request is copied
    assert 7 <= int(copied[2].split()[0]) <= 13, out  # one in ten: about 4,000 draws a round, 2 rounds
    goal = re.search(r"-c1: [\d.]+, interval [\d.]+-[\d.]+, rounds [\d.]+-[\d.]+ \((met|MISSED|not settled)", out)
    assert goal, out
    assert re.search(r"itself [\d.]+, interval [\d.]+-[\d.]+", out), out
    assert re.search(r"copies, 3 challengers: \{'sent': [1-9]\d*, 'scored': [1-9]", out), out

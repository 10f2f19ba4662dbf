"""bench/rollouts.py: its verdict on the challengers' p99 goal (the p99 of every request of
every round, with a bootstrap interval over the rounds, never a single round's luck), and a
short run end to end that prints every server of the table and the goal's lines. The figures
themselves are not judged here."""

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


def _round(*latencies: tuple[int, int]) -> dict[str, list[list[int]]]:
    """One round as wrk's histogram gives it: [microseconds, count] pairs."""
    return {"latency_us": [list(pair) for pair in latencies]}


def test_the_pooled_p99_counts_requests_not_rounds() -> None:
    bench = _bench_module()
    quiet = _round((1000, 1000))
    hiccup = _round((1000, 970), (10_000, 30))  # 3 % slow: its own p99 is 10 ms
    assert bench.pooled_p99_ms(bench.binned([quiet])) == pytest.approx(1.0, rel=1e-3)
    assert bench.pooled_p99_ms(bench.binned([hiccup])) == pytest.approx(10.0, rel=1e-3)
    # together 1.5 % of the 2,000 are slow: still over 1 %, so the pooled p99 is 10 ms ...
    assert bench.pooled_p99_ms(bench.binned([quiet, hiccup])) == pytest.approx(10.0, rel=1e-3)
    # ... and with a third quiet round 1 % is no longer slow: 1 ms, where a median of the rounds'
    # own p99s (1, 1, 10) would agree but a mean (4) would not
    assert bench.pooled_p99_ms(bench.binned([quiet, hiccup, quiet])) == pytest.approx(1.0, rel=1e-3)


def test_the_bootstrap_interval_is_paired_by_round() -> None:
    bench = _bench_module()
    # the machine's mood moves both servers alike from round to round: the ratio holds at 1.2
    alone = [_round((1000 * (i + 1), 990), (5000 * (i + 1), 10)) for i in range(8)]
    mixed = [_round((1200 * (i + 1), 990), (6000 * (i + 1), 10)) for i in range(8)]
    low, high = bench.bootstrap_interval(bench.binned(mixed), bench.binned(alone))
    assert low == pytest.approx(1.2, rel=2e-3) and high == pytest.approx(1.2, rel=2e-3)
    # a server slow in one round of eight only: the pooled ratio stays near 1, the interval reaches up
    steady = [_round((1000, 1000)) for _ in range(8)]
    once = [_round((1000, 1000))] * 7 + [_round((1000, 940), (3000, 60))]  # 0.75 % of all slow
    assert bench.pooled_ratio({("a", 1): once, (bench.ALONE, 1): steady}, "a", 1) == pytest.approx(1.0, rel=1e-3)
    low, high = bench.bootstrap_interval(bench.binned(once), bench.binned(steady))
    assert low == pytest.approx(1.0, rel=1e-3) and high == pytest.approx(3.0, rel=1e-3)


def test_rounds_on_one_set_of_processes_are_drawn_together() -> None:
    bench = _bench_module()
    runs = [_round((1000, 10)) | {"processes": block} for block in (0, 0, 1, 2, 2, 2)]
    rows = bench.by_processes(runs)
    assert rows.sum(axis=1).tolist() == [20, 10, 30]  # one row a set: what a process drew stays with it
    # without the field (a run saved before it), every round is its own set
    assert len(bench.by_processes([_round((1000, 10)), _round((1000, 10))])) == 2


def test_a_verdict_needs_the_whole_interval_on_one_side_of_the_goal() -> None:
    verdict = _bench_module().verdict
    assert verdict(0.9, 1.08, 1.10, 15) == "met"
    assert verdict(1.12, 1.4, 1.10, 15) == "MISSED"
    assert verdict(0.95, 1.2, 1.10, 15).startswith("not settled")  # a ratio below the goal is not enough
    # under 6 sets of processes a bootstrap has too few to draw from: no verdict, however narrow
    assert verdict(0.91, 0.91, 1.10, 5) == (
        "not settled: 5 sets of processes are too few for a 95 % interval, 6 are enough"
    )


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

"""The benchmark script runs end to end (short runs) and prints its tables: every column,
a row for each server and payload, and numbers that parse and are positive. The figures
themselves are not judged here."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "serving" / "bench.py"


COLUMNS = ["server", "workers", "rows", "conns", "req/s", "p50 ms", "p99 ms", "vs best peer", "errors", "note"]
ROW = re.compile(
    r"^(?P<server>\S+) +(?P<workers>.+?) +(?P<rows>\d+) +(?P<conns>\d+|-) +(?P<rps>\d+) +(?P<p50>[\d.]+)"
    r" +(?P<p99>[\d.]+) +(?P<ratio>[\d.]+x|-) +(?P<errors>\d+)  (?P<note>.*)$"
)


def printed_table(stdout: str) -> list[dict[str, str]]:
    """The rows of the req/s table the bench prints, checked against its header."""
    lines = stdout.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith("server ")), None)
    assert at is not None, f"no table header in:\n{stdout}"
    header = lines[at]
    positions = [header.find(column) for column in COLUMNS]
    assert -1 not in positions and positions == sorted(positions), f"columns {COLUMNS} not all in order: {header}"
    assert set(lines[at + 1]) == {"-"}, lines[at + 1]
    rows = []
    for line in lines[at + 2 :]:
        if not line.strip():
            break
        match = ROW.match(line)
        assert match, f"a table row that does not parse: {line!r}"
        rows.append(match.groupdict())
    return rows


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk: scripts/setup/30-serving.sh installs it")
def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--peers",
            "none",
            "--duration",
            "1",
            "--conns",
            "4",
            "--workers",
            "default",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    for name in ("floor-http", "deckhand"):
        cells = [r for r in results if r["server"] == name]
        assert {r["payload"] for r in cells} == {1, 100}, cells
        for r in cells:  # deckhand's answers were checked against predict_proba() before timing
            assert r["rps"] > 0 and r["errors"] == 0 and not r["note"].startswith("FAILED"), r
    assert {r["payload"] for r in results if r["server"] == "floor-predict"} == {1, 100}
    assert "deckhand" in done.stdout and "req/s" in done.stdout and "total run" in done.stdout

    table = printed_table(done.stdout)
    for name in ("floor-http", "floor-predict", "deckhand"):  # every server, at each payload
        assert sorted(int(r["rows"]) for r in table if r["server"] == name) == [1, 100], (name, table)
    assert len(table) == 6, table
    for r in table:
        assert int(r["rps"]) > 0 and 0 < float(r["p50"]) <= float(r["p99"]), r
        assert int(r["errors"]) == 0, r
        assert (r["conns"] == "-") == (r["server"] == "floor-predict"), r  # in-process: no connections
        if r["conns"] != "-":
            assert int(r["conns"]) == 4, r


@pytest.mark.slow
def test_bench_memory_smoke(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--memory", "--deployments", "4", "--workers", "default"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "with 4 deployments" in done.stdout and "after a prediction to each: RSS" in done.stdout
    processes = re.search(r"with 4 deployments, workers .*: (\d+) processes", done.stdout)
    assert processes and int(processes.group(1)) > 0, done.stdout
    for when in ("after all loaded:", "after a prediction to each:"):
        figures = re.search(rf"{re.escape(when)} +RSS +(\d+) MiB +PSS +(\d+) MiB", done.stdout)
        assert figures, f"no {when!r} line with RSS and PSS in:\n{done.stdout}"
        rss, pss = (int(v) for v in figures.groups())
        assert 0 < pss <= rss, (when, rss, pss)

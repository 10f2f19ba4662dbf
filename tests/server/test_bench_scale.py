"""bench/control_plane_scale.py runs end to end at its --quick sizes (shorter windows) and
prints its markdown table: a column for 1 and for 3 replicas, every change delivered, the
ingest counted exactly once, figures that parse, and the command that made it. The bench
checks delivery and exactly-once itself (and exits 1 otherwise); the figures are not judged."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "control_plane_scale.py"
HEADER = "| measure | 1 replica | 3 replicas |"
ARGS = ["--quick", "--duration", "2"]


def _number(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_bench_quick() -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (scripts/setup/10-system-packages.sh installs it)")
    done = subprocess.run([sys.executable, str(BENCH), *ARGS], capture_output=True, text=True, timeout=550)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    lines = done.stdout.splitlines()
    assert lines.count(f"command: python bench/control_plane_scale.py {' '.join(ARGS)}") == 2, done.stdout
    assert re.search(r"^seeding: 10 environments .* 500 deployments in [\d.]+ s", done.stdout, re.MULTILINE)
    at = lines.index(HEADER)
    rows = {}
    for line in lines[at + 2 :]:
        if not line.strip():
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 3, f"a row that does not fit the header: {line!r}"
        rows[cells[0]] = cells[1:]
    for cell in rows["changes that reached their agent"]:
        delivered, made = cell.split("/")
        assert delivered == made and _number(made) > 0, cell
    for cell in rows["exactly-once: records acknowledged = counted"]:
        acknowledged, counted = cell.split(" = ")
        assert acknowledged == counted and _number(counted) > 0, cell
    for key in ("full desired state GET, p50 ms", "ingest records/s accepted"):
        assert all(_number(cell) > 0 for cell in rows[key]), (key, rows[key])
    assert all(_number(cell) >= 0 for cell in rows["change -> agent, p99 ms"]), rows["change -> agent, p99 ms"]
    one, three = rows["HTTP requests per replica, ingest window"]
    assert len(one.split(" / ")) == 1 and len(three.split(" / ")) == 3, (one, three)
    assert all(_number(n) > 0 for n in three.split(" / ")), three  # round-robin reached every replica
    one, three = rows["replica CPU s, desired-state window (each; sum)"]
    assert ";" not in one and len(three.split(";")[0].split(" / ")) == 3, (one, three)
    assert rows["errors, desired-state window"] == ["0", "0"] and rows["errors, ingest window"] == ["0", "0"], rows
    assert "not scale-out" in done.stdout

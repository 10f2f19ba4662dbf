"""bench/accuracy.py runs end to end at its --quick sizes and prints its markdown table: a
row for each stage, with figures that parse and are positive, and the command that made it.
The bench checks the accuracy itself (matched = N, RMSE = numpy's) and exits 1 otherwise;
the figures are not judged here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "accuracy.py"
HEADER = "| stage | database | count | seconds | rate | p50 ms | p99 ms | server peak RSS MiB | note |"
STAGES = {
    "predictions load": ("20,000 rows", "rows/s"),
    "actuals upload": ("20,000 rows", "rows/s"),
    "actuals re-send": ("20,000 rows", "rows/s"),
    "evaluation setup": ("50 deployments", "rows/s"),
    "accuracy evaluation": ("50 deployments", "deps/s"),
    "policy evaluation, first round": ("51 deployments", "deps/s"),
    "policy evaluation, second round": ("51 deployments", "deps/s"),
}
NO_RSS = {"policy evaluation, first round", "policy evaluation, second round"}  # run in the bench's process


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def run_quick(*args: str) -> tuple[str, dict[str, dict[str, str]]]:
    """The bench's stdout and its table's rows by stage (each checked for its shape)."""
    done = subprocess.run([sys.executable, str(BENCH), "--quick", *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    lines = done.stdout.splitlines()
    at = next((i for i, line in enumerate(lines) if line == HEADER), None)
    assert at is not None, f"no table header {HEADER!r} in:\n{done.stdout}"
    assert re.fullmatch(r"\|(-{3,}:?\|)+", lines[at + 1]), lines[at + 1]
    columns = [c.strip() for c in HEADER.strip("|").split("|")]
    rows = {}
    for line in lines[at + 2 :]:
        if not line.strip():
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == len(columns), f"a row that does not fit the header: {line!r}"
        row = dict(zip(columns, cells, strict=True))
        assert row["stage"] not in rows, f"stage twice: {line!r}"
        rows[row["stage"]] = row
    command = f"command: python bench/accuracy.py --quick {' '.join(args)}".strip()
    assert lines.count(command) == 2, f"{command!r} not printed before and after the table:\n{done.stdout}"
    return done.stdout, rows


def check_rows(rows: dict[str, dict[str, str]], database: str) -> None:
    assert set(rows) == set(STAGES), sorted(rows)
    for stage, (count, unit) in STAGES.items():
        row = rows[stage]
        assert row["database"] == database and row["count"] == count, row
        assert _number(row["seconds"]) > 0, row
        rate, rate_unit = row["rate"].split()
        assert _number(rate) > 0 and rate_unit == unit, row
        assert stage in NO_RSS or _number(row["server peak RSS MiB"]) > 0, row
    evaluation = rows["accuracy evaluation"]
    assert 0 < _number(evaluation["p50 ms"]) <= _number(evaluation["p99 ms"]), evaluation
    upload = rows["actuals upload"]["note"]
    assert "`deckhand actuals upload`" in upload and "20,000 new and matched" in upload, upload
    assert "RMSE = numpy's" in upload, upload
    assert "all unchanged (checked)" in rows["actuals re-send"]["note"], rows["actuals re-send"]
    assert "51 deliveries queued" in rows["policy evaluation, first round"]["note"]
    assert "0 deliveries queued" in rows["policy evaluation, second round"]["note"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_quick_on_sqlite() -> None:
    _, rows = run_quick()
    check_rows(rows, "sqlite")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(900)
def test_bench_quick_on_postgres() -> None:
    stdout, rows = run_quick("--database", "postgres")
    skipped = rows.get("all stages", {}).get("note", "")
    assert not skipped, f"the bench could not run on PostgreSQL: {skipped}"
    check_rows(rows, "postgres")
    assert "PostgreSQL: a throw-away cluster" in stdout

"""bench/monitoring.py runs end to end (tiny sizes) and prints its table: a row for each
serving mode, cost and tracking-agent channel, with a number that parses and is positive."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "monitoring.py"
UNITS = {
    **{f"serve/{mode}": "req/s" for mode in ("off", "again", "spool", "amqp")},
    **{f"cost/{what}": "us CPU/req" for what in ("hook", "spool", "amqp")},
    **{f"agent/{channel}": "records/s" for channel in ("spool", "amqp", "lines", "hook")},
}
ROW = re.compile(r"^(?P<name>\S+) +(?P<value>-?[\d,]+(?:\.\d)?) (?P<unit>req/s|us CPU/req|records/s) +(?P<note>.*)$")


@pytest.mark.slow
@pytest.mark.rabbitmq
@pytest.mark.timeout(900)
def test_bench_smoke(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (scripts/setup/30-serving.sh installs it)")
    from deckhand.monitoring.testing import rabbitmq_available

    if why := rabbitmq_available():
        pytest.skip(
            f"{why}; without a broker the bench has no amqp rows: "
            "run ./scripts/test (or scripts/setup/60-rabbitmq.sh) to make it run"
        )
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--duration", "1", "--rounds", "1", "--connections", "4",
         "--records", "4000", "--deployments", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    at = next((i for i, line in enumerate(lines) if line.split() == ["row", "value", "unit", "note"]), None)
    assert at is not None, f"no table header (row value unit note) in:\n{proc.stdout}"
    table = {}
    for line in lines[at + 1 :]:
        if not line.strip():
            break
        match = ROW.match(line)
        assert match, f"a table row that does not parse: {line!r}"
        table[match["name"]] = (float(match["value"].replace(",", "")), match["unit"], match["note"])
    assert set(table) == set(UNITS), sorted(table)
    for name, (value, unit, note) in table.items():
        assert unit == UNITS[name], (name, unit)
        if name.startswith("cost/") and name != "cost/hook":
            continue  # a cost measured at the noise level may come out a hair below zero
        assert value > 0, (name, value, note)
    import json

    rows = {r["name"]: r for r in json.loads(out.read_text())}
    assert set(rows) == set(table)
    for name, (value, _, _) in table.items():  # the table prints the JSON's figures, rounded
        exact = rows[name]["value"]
        assert abs(exact - value) <= (0.51 if exact >= 100 else 0.051), (name, exact, value)

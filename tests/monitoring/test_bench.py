"""bench/monitoring.py runs end to end (tiny sizes) and prints its table."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "monitoring.py"


@pytest.mark.slow
@pytest.mark.rabbitmq
@pytest.mark.timeout(900)
def test_bench_smoke(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (scripts/setup/30-serving.sh installs it)")
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--duration", "1", "--rounds", "1", "--connections", "4",
         "--records", "4000", "--deployments", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("serve/off", "serve/again", "serve/spool", "cost/hook", "cost/spool", "agent/spool", "agent/lines"):
        # a cost measured at the noise level may come out a hair below zero
        assert re.search(rf"^{re.escape(name)}\s+-?[\d,.]+", proc.stdout, re.MULTILINE), proc.stdout
    import json

    rows = {r["name"]: r for r in json.loads(out.read_text())}
    assert rows["agent/spool"]["value"] > 0 and rows["serve/off"]["value"] > 0

"""The benchmark script runs end to end (short runs; the numbers are not checked here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "serving" / "bench.py"


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="needs wrk: scripts/setup/30-serving.sh installs it"
)
def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--duration", "1", "--concurrency", "4", "--json", str(out)],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = {r["target"]: r for r in json.loads(out.read_text())}
    for name in ("floor-http", "deckhand", "deckhand-nobatch"):
        assert results[name]["rps"] > 0 and results[name]["errors"] == 0, results[name]
    assert "deckhand" in done.stdout and "req/s" in done.stdout

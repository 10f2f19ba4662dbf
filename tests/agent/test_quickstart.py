"""`deckhand quickstart --exit-after-demo`: the README's first command, as a user runs it."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_quickstart_deploys_and_predicts(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "deckhand.cli", "quickstart", "--exit-after-demo", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert '"prediction": ' in out and "predictionValues" in out
    assert "prediction URL  http://127.0.0.1:" in out and "/deployments/" in out
    assert "admin token     dh_" in out and "curl -s -X POST" in out

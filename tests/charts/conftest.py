"""What the chart tests share: helm, a tool the Kubernetes test environment builds
(scripts/setup/50-k8s-testenv.sh), and a way to run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from k8s_testenv import build  # noqa: E402


@pytest.fixture(scope="module")
def helm() -> str:
    if not build.HELM.complete:
        pytest.skip("helm is not built: run scripts/k8s-testenv build helm (scripts/setup/50-k8s-testenv.sh does)")
    return str(build.HELM.bin("helm"))


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)

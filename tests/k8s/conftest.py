"""Fixtures for tests against the real Kubernetes test environment (scripts/k8s-testenv)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from k8s_testenv.pytest_plugin import k8s_api, k8s_env, k8s_namespace  # noqa: E402,F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.k8s)
            item.add_marker(pytest.mark.slow)

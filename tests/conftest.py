"""Fixtures shared by every test suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.hook_packages import iris_hook_package

REPO_ROOT = Path(__file__).resolve().parents[1]

# Session-wide real components for every suite that needs them: one Docker engine (and one
# build of each image), one PostgreSQL cluster, one S3 object store (SeaweedFS); and objects
# on an in-process control plane.
pytest_plugins = [
    "tests.docker_fixtures",
    "tests.postgres_fixtures",
    "tests.s3_fixtures",
    "tests.control_plane_fixtures",
]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def demo_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deckhand.packages.demo import train_demo_package

    path = tmp_path_factory.mktemp("packages") / "iris.dhpkg"
    train_demo_package(path)
    return path


@pytest.fixture(scope="session")
def second_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deckhand.packages.demo import train_demo_package

    path = tmp_path_factory.mktemp("packages") / "iris-2.dhpkg"
    train_demo_package(path, seed=1, name="iris-v2")
    return path


@pytest.fixture(scope="session")
def binary_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary classifier on other features than iris: incompatible with `demo_package`."""
    from deckhand.packages.demo import train_demo_package

    path = tmp_path_factory.mktemp("binary") / "binary.dhpkg"
    train_demo_package(path, task="binary")
    return path


FLAKY_HOOK = """\
import numpy as np


def score(data, model, **kwargs):
    # A candidate that fails on long petals (about a third of iris rows) and otherwise
    # answers with the same probabilities for every row.
    if (data["petal_length"] > 5.0).any():
        raise RuntimeError("this model fails on petal_length > 5 (test fixture)")
    return np.tile([0.2, 0.5, 0.3], (len(data), 1))
"""


@pytest.fixture(scope="session")
def flaky_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An iris-compatible classifier that raises on rows with petal_length > 5: a canary
    that must be rolled back while clients see no failure."""
    return iris_hook_package(tmp_path_factory.mktemp("flaky"), FLAKY_HOOK)

"""Fixtures shared by every test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Session-wide real components for every suite that needs them: one Docker engine (and one
# build of each image), one PostgreSQL cluster; and objects on an in-process control plane.
pytest_plugins = ["tests.docker_fixtures", "tests.postgres_fixtures", "tests.control_plane_fixtures"]


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

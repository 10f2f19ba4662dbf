"""Shared fixtures for package tests: one demo package built per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from deckhand.packages.demo import train_demo_package


@pytest.fixture(scope="session")
def demo_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.dhpkg"
    train_demo_package(path)
    return path

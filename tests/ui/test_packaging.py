"""A non-editable install must ship the UI's templates and static files: pyproject's package-data covers them."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import deckhand.server.ui as ui


def test_package_data_patterns_cover_every_ui_file(repo_root: Path) -> None:
    config = tomllib.loads((repo_root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["*"]
    ui_dir = Path(ui.__file__).parent
    files = [p for sub in ("templates", "static") for p in (ui_dir / sub).iterdir() if p.is_file()]
    assert len(files) >= 8
    uncovered = [p.name for p in files if not any(fnmatch.fnmatch(p.name, pattern) for pattern in patterns)]
    assert uncovered == [], f"add patterns for {uncovered} to [tool.setuptools.package-data] in pyproject.toml"

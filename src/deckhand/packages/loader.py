"""load_model: verify a package and bring its model up, ready to predict."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from deckhand.packages.container import read_package
from deckhand.packages.formats import format_module
from deckhand.packages.limits import DEFAULT_LIMITS, PackageLimits
from deckhand.packages.model import LoadedModel


def work_dir() -> Path:
    """Where loaded packages put files ($DECKHAND_CACHE_DIR/models, else the temp dir)."""
    root = Path(os.environ.get("DECKHAND_CACHE_DIR") or tempfile.gettempdir()) / "models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def load_model(path: Path, limits: PackageLimits = DEFAULT_LIMITS) -> LoadedModel:
    """Load the package at `path`. Raises PackageError (with the reason) if it cannot,
    PackageLimitError if it is over `limits` (checked before anything is inflated)."""
    manifest, files = read_package(Path(path), limits)
    return format_module(manifest.format).load(manifest, files, work_dir())

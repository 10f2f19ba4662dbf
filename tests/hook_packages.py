"""Packages built from a Python hook, for tests that need a model that behaves oddly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def iris_hook_package(root: Path, hook: str) -> Path:
    """An iris-compatible classifier (same target, labels) whose `custom.py` is `hook`, built
    by the CLI into `root`."""
    (root / "src").mkdir()
    (root / "src" / "custom.py").write_text(hook)
    path = root / f"{root.name}.dhpkg"
    subprocess.run(
        [sys.executable, "-m", "deckhand.cli", "package", "build", str(root / "src"), "--format", "python",
         "--target-type", "multiclass", "--class-labels", "setosa,versicolor,virginica", "-o", str(path)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return path

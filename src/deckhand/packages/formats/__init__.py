"""One module per package format: how to build its payload and how to load it."""

from __future__ import annotations

import importlib
from types import ModuleType

from deckhand.packages.errors import PackageError
from deckhand.packages.manifest import MODEL_FORMATS


def format_module(fmt: str) -> ModuleType:
    """The module for a format name (sklearn, onnx, mlflow, python)."""
    if fmt not in MODEL_FORMATS:
        raise PackageError(f"unknown format {fmt!r}; expected one of {', '.join(MODEL_FORMATS)}")
    return importlib.import_module(f"deckhand.packages.formats.{fmt}_format")

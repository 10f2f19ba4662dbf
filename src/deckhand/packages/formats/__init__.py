"""One module per package format: how to build its payload and how to load it.

`FORMATS` names them (by module path, so a format's libraries are imported only when a
package of that format is built or loaded). Format names are fixed by the manifest
(`MODEL_FORMATS`), so there is no entry-point group for third-party formats: a custom
model is a `python` package with its own hook file.
"""

from __future__ import annotations

from types import ModuleType

from deckhand import extras
from deckhand.packages.errors import PackageError
from deckhand.packages.manifest import MODEL_FORMATS
from deckhand.registry import Registry

FORMATS: Registry[ModuleType] = Registry(
    "format",
    {fmt: f"deckhand.packages.formats.{fmt}_format" for fmt in MODEL_FORMATS},
    requirements=extras.FORMATS,
    error=PackageError,
)


def format_module(fmt: str) -> ModuleType:
    """The module for a format name (sklearn, onnx, mlflow, python)."""
    return FORMATS.load(fmt)

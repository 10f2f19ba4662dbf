"""Custom Python models: a `custom.py` hook file (DRUM-style) plus any files it needs.

Hooks: `load_model(code_dir) -> model` (optional; default None),
`transform(data: DataFrame, model) -> DataFrame` (optional), and
`score(data: DataFrame, model, **kwargs)` (required) returning, for classifiers, a
DataFrame with one probability column per class label (or an (n, k) array), and for
regression a 1-D array, Series, or a DataFrame with a `Predictions` column.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from deckhand.packages.errors import PackageError
from deckhand.packages.formats.base import BuiltPayload, read_tree, versions, write_tree
from deckhand.packages.manifest import Manifest
from deckhand.packages.model import (
    Batch,
    LoadedModel,
    ModelInputError,
    Predictions,
    output_to_predictions,
)

HOOK_FILE = "custom.py"
LIBRARIES = ("numpy", "pandas", "scikit-learn")


def build(source: Path) -> BuiltPayload:
    if source.is_file():
        if source.suffix != ".py":
            raise PackageError(f"{source}: the python format takes a .py hook file or a directory")
        files = {HOOK_FILE: source.read_bytes()}
    else:
        if not (source / HOOK_FILE).is_file():
            raise PackageError(
                f"{source}: no {HOOK_FILE} in the directory; the python format needs a hook "
                "file defining score(data, model, **kwargs) (and optionally load_model, transform)"
            )
        files = read_tree(source)
    text = files[HOOK_FILE].decode("utf-8", errors="replace")
    if "def score" not in text:
        raise PackageError(f"{source}: {HOOK_FILE} defines no score(data, model, **kwargs) hook")
    return BuiltPayload(files=files, library_versions=versions(*LIBRARIES))


def _import_hooks(code_dir: Path) -> ModuleType:
    name = f"deckhand_custom_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, code_dir / HOOK_FILE)
    if spec is None or spec.loader is None:
        raise PackageError(f"cannot import {code_dir / HOOK_FILE}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(code_dir))  # let custom.py import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise PackageError(f"{HOOK_FILE} failed to import: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(code_dir))
    if not callable(getattr(module, "score", None)):
        raise PackageError(f"{HOOK_FILE} defines no score(data, model, **kwargs) function")
    return module


class PythonModel(LoadedModel):
    def __init__(self, manifest: Manifest, hooks: ModuleType, model: Any, holder: Any) -> None:
        super().__init__(manifest=manifest, resources=[holder])
        self.hooks = hooks
        self.model = model
        self.transform = getattr(hooks, "transform", None)

    def _predict(self, batch: Batch) -> Predictions:
        data = batch.to_frame()
        try:
            if self.transform is not None:
                data = self.transform(data, self.model)
            output = self.hooks.score(data, self.model)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelInputError(f"score() rejected the input: {type(exc).__name__}: {exc}") from exc
        return output_to_predictions(output, self.manifest)


def load(manifest: Manifest, files: dict[str, bytes], workdir: Path) -> LoadedModel:
    holder = tempfile.TemporaryDirectory(prefix="deckhand-python-", dir=workdir)
    code_dir = Path(holder.name)
    write_tree(files, code_dir)
    hooks = _import_hooks(code_dir)
    loader = getattr(hooks, "load_model", None)
    try:
        model = loader(str(code_dir)) if callable(loader) else None
    except Exception as exc:
        raise PackageError(f"{HOOK_FILE} load_model() failed: {type(exc).__name__}: {exc}") from exc
    return PythonModel(manifest, hooks, model, holder)

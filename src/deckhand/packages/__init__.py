"""Model packages: one file holding a model, its manifest and its training baseline.

build_package(source, fmt, output, ...) -> Manifest
read_manifest(path, limits) -> Manifest  # verifies names, limits, structure and payload sha256
load_model(path, limits) -> LoadedModel  # .predict(Batch) -> Predictions
"""

from __future__ import annotations

from deckhand.packages.builder import build_package, build_package_from
from deckhand.packages.container import PACKAGE_SUFFIX, file_sha256, read_manifest
from deckhand.packages.errors import PackageError
from deckhand.packages.limits import PackageLimitError, PackageLimits
from deckhand.packages.loader import load_model
from deckhand.packages.manifest import (
    MODEL_FORMATS,
    TARGET_TYPES,
    Feature,
    Manifest,
    TrainingSummary,
)
from deckhand.packages.model import Batch, LoadedModel, ModelInputError, Predictions

__all__ = [
    "MODEL_FORMATS",
    "PACKAGE_SUFFIX",
    "TARGET_TYPES",
    "Batch",
    "Feature",
    "LoadedModel",
    "Manifest",
    "ModelInputError",
    "PackageError",
    "PackageLimitError",
    "PackageLimits",
    "Predictions",
    "TrainingSummary",
    "build_package",
    "build_package_from",
    "file_sha256",
    "load_model",
    "read_manifest",
]

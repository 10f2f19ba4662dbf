"""scikit-learn models saved with joblib or pickle (an estimator or a Pipeline)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from deckhand.packages.errors import PackageError
from deckhand.packages.formats.base import BuiltPayload, Learned, build_one_file, sklearn_introspect
from deckhand.packages.formats.sklearn_fastpath import compile_boosted_trees, compile_linear
from deckhand.packages.manifest import Manifest
from deckhand.packages.model import (
    Batch,
    LoadedModel,
    ModelInputError,
    Predictions,
    labels_to_probabilities,
)

PAYLOAD_NAME = "model.joblib"
LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib", "pandas")


def _load_estimator(raw: bytes, origin: str) -> Any:
    import joblib

    try:
        return joblib.load(io.BytesIO(raw))
    except Exception as exc:
        raise PackageError(
            f"{origin}: cannot load the scikit-learn model with joblib/pickle ({type(exc).__name__}: "
            f"{exc}); save it with joblib.dump(model, path)"
        ) from exc


def _learn(raw: bytes, source: Path) -> Learned:
    model = _load_estimator(raw, str(source))
    if not hasattr(model, "predict"):
        raise PackageError(
            f"{source}: the object is a {type(model).__name__}, which has no predict(); "
            "package a fitted scikit-learn estimator or Pipeline"
        )
    return sklearn_introspect(model)


def build(source: Path) -> BuiltPayload:
    return build_one_file(
        source,
        suffixes=(".joblib", ".pkl", ".pickle"),
        wanted=".joblib/.pkl",
        hint="; pass the model file itself",
        learn=_learn,
        payload_name=PAYLOAD_NAME,
        libraries=LIBRARIES,
    )


class SklearnModel(LoadedModel):
    """Calls predict_proba (classifiers) or predict; arrays unless the model wants names."""

    def __init__(self, manifest: Manifest, estimator: Any) -> None:
        super().__init__(manifest=manifest)
        self.estimator = estimator
        numeric = all(f.type == "numeric" for f in manifest.features)
        self.wants_frame = hasattr(estimator, "feature_names_in_") or not numeric
        self.classifier = manifest.target_type != "regression"
        self.has_proba = hasattr(estimator, "predict_proba")
        self.column_order: list[int] | None = None
        if self.classifier and self.has_proba:
            own = [str(c) for c in getattr(estimator, "classes_", manifest.class_labels or [])]
            labels = manifest.class_labels or []
            self.column_order = None if own == labels else [own.index(label) for label in labels]
        # The fast paths take an array in the manifest's column order: right for a model fitted
        # on an array, or on a frame of these very columns in this order (no frame to build).
        names = manifest.feature_names
        fitted_on = [str(c) for c in getattr(estimator, "feature_names_in_", names)]
        self.fast = None
        if numeric and fitted_on == names:
            with warnings.catch_warnings():  # the check calls a frame-fitted model on arrays: it warns
                warnings.simplefilter("ignore", UserWarning)
                for compile_fast in (compile_linear, compile_boosted_trees):
                    self.fast = self.fast or compile_fast(estimator, len(names), self.classifier)

    def _input(self, batch: Batch) -> Any:
        return batch.to_frame() if self.wants_frame else batch.to_array()

    def _predict(self, batch: Batch) -> Predictions:
        if self.fast is not None and (not self.classifier or self.has_proba):
            out = self.fast(batch.to_array())
            if not self.classifier:
                return Predictions(values=out)
            if self.column_order is not None:
                out = out[:, self.column_order]
            return Predictions(probabilities=out)
        data = self._input(batch)
        try:
            if self.classifier:
                if self.has_proba:
                    proba = np.asarray(self.estimator.predict_proba(data), dtype=float)
                    if self.column_order is not None:
                        proba = proba[:, self.column_order]
                    return Predictions(probabilities=proba)
                labels = self.estimator.predict(data)
                return Predictions(probabilities=labels_to_probabilities(labels, self.manifest.class_labels or []))
            values = np.asarray(self.estimator.predict(data), dtype=float)
        except ValueError as exc:
            raise ModelInputError(str(exc)) from exc
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        return Predictions(values=values)


def load(manifest: Manifest, files: dict[str, bytes], workdir: Path) -> LoadedModel:
    if PAYLOAD_NAME not in files:
        raise PackageError(f"corrupt: an sklearn package needs payload/{PAYLOAD_NAME}")
    return SklearnModel(manifest, _load_estimator(files[PAYLOAD_NAME], manifest.name))

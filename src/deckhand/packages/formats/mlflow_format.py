"""MLflow models (a directory with an MLmodel file) served through mlflow.pyfunc.

For class probabilities, log scikit-learn classifiers with
`pyfunc_predict_fn="predict_proba"`; a pyfunc that returns labels gives one-hot values.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from deckhand.packages.errors import PackageError
from deckhand.packages.formats.base import (
    BuiltPayload,
    read_tree,
    sklearn_introspect,
    versions,
    write_tree,
)
from deckhand.packages.manifest import Feature, Manifest
from deckhand.packages.model import (
    Batch,
    LoadedModel,
    ModelInputError,
    Predictions,
    output_to_predictions,
)

LIBRARIES = ("mlflow", "mlflow-skinny", "numpy", "pandas", "scikit-learn")
_NUMERIC = {"double", "float", "long", "integer", "boolean"}


def _pyfunc(directory: Path) -> Any:
    try:
        import mlflow.pyfunc
    except ImportError as exc:
        raise PackageError("the mlflow format needs mlflow: pip install mlflow-skinny (or mlflow)") from exc
    try:
        return mlflow.pyfunc.load_model(str(directory))
    except Exception as exc:
        raise PackageError(f"{directory}: mlflow cannot load the model ({exc})") from exc


def _signature_features(mlmodel: dict[str, Any]) -> list[Feature] | None:
    inputs = (mlmodel.get("signature") or {}).get("inputs")
    if not inputs:
        return None
    columns = json.loads(inputs) if isinstance(inputs, str) else inputs
    if not all("name" in c for c in columns):
        return None  # a tensor signature: no column names
    return [Feature(name=c["name"], type="numeric" if c.get("type") in _NUMERIC else "categorical") for c in columns]


def build(source: Path) -> BuiltPayload:
    mlmodel_path = source / "MLmodel"
    if not source.is_dir() or not mlmodel_path.is_file():
        raise PackageError(
            f"{source}: not an MLflow model directory (no MLmodel file); pass the directory "
            "written by mlflow.<flavor>.save_model"
        )
    mlmodel = yaml.safe_load(mlmodel_path.read_text()) or {}
    if "python_function" not in (mlmodel.get("flavors") or {}):
        raise PackageError(f"{source}: the MLmodel has no python_function flavor; it cannot be served")
    pyfunc = _pyfunc(source)
    target_type = labels = features = None
    try:
        raw = pyfunc.get_raw_model()
    except Exception:
        raw = None
    if raw is not None and hasattr(raw, "predict") and "sklearn" in mlmodel["flavors"]:
        target_type, labels, features = sklearn_introspect(raw)
    return BuiltPayload(
        files=read_tree(source),
        target_type=target_type,
        class_labels=labels,
        features=_signature_features(mlmodel) or features,
        library_versions=versions(*LIBRARIES),
    )


class MlflowModel(LoadedModel):
    def __init__(self, manifest: Manifest, pyfunc: Any, workdir: Any) -> None:
        super().__init__(manifest=manifest, resources=[workdir])
        self.pyfunc = pyfunc

    def _predict(self, batch: Batch) -> Predictions:
        frame = batch.to_frame()
        try:
            output = self.pyfunc.predict(frame)
        except Exception as exc:
            if type(exc).__name__ in ("MlflowException", "ValueError", "TypeError"):
                raise ModelInputError(str(exc)) from exc
            raise
        return output_to_predictions(output, self.manifest)


def load(manifest: Manifest, files: dict[str, bytes], workdir: Path) -> LoadedModel:
    holder = tempfile.TemporaryDirectory(prefix="deckhand-mlflow-", dir=workdir)
    root = Path(holder.name)
    write_tree(files, root)
    return MlflowModel(manifest, _pyfunc(root), holder)

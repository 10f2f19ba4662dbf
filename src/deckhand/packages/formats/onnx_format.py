"""ONNX models run with onnxruntime (e.g. converted from scikit-learn with skl2onnx)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deckhand.packages.errors import PackageError
from deckhand.packages.formats.base import BuiltPayload, Learned, build_one_file
from deckhand.packages.manifest import Feature, Manifest
from deckhand.packages.model import Batch, LoadedModel, ModelInputError, Predictions

PAYLOAD_NAME = "model.onnx"
LIBRARIES = ("onnxruntime", "onnx", "numpy")

_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": object,
    "tensor(bool)": np.bool_,
}


def _session(raw: bytes, origin: str) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise PackageError("the onnx format needs onnxruntime: pip install 'deckhand[onnx]'") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # small batches: threads cost more than they give
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(raw, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise PackageError(f"{origin}: onnxruntime cannot load the model ({exc})") from exc


def _class_labels(raw: bytes) -> list[str] | None:
    """Class labels stored in the graph by ai.onnx.ml classifier nodes (skl2onnx does this)."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load_from_string(raw)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings" and attr.strings:
                return [s.decode("utf-8") for s in attr.strings]
            if attr.name in ("classlabels_int64s", "classlabels_ints") and attr.ints:
                return [str(i) for i in attr.ints]
    return None


def _learn(raw: bytes, source: Path) -> Learned:
    session = _session(raw, str(source))
    inputs = session.get_inputs()
    if len(inputs) == 1:
        width = inputs[0].shape[-1] if len(inputs[0].shape) == 2 else None
        features = [Feature(name=f"f{i}") for i in range(width)] if isinstance(width, int) else None
    else:
        features = [
            Feature(name=i.name, type="categorical" if i.type == "tensor(string)" else "numeric") for i in inputs
        ]
    labels = _class_labels(raw)
    target_type = None
    if labels:
        target_type = "binary" if len(labels) == 2 else "multiclass"
    elif len(session.get_outputs()) == 1:
        target_type = "regression"
    return target_type, labels, features


def build(source: Path) -> BuiltPayload:
    return build_one_file(
        source, suffixes=(".onnx",), wanted=".onnx", learn=_learn, payload_name=PAYLOAD_NAME, libraries=LIBRARIES
    )


class OnnxModel(LoadedModel):
    def __init__(self, manifest: Manifest, session: Any) -> None:
        super().__init__(manifest=manifest)
        self.session = session
        self.inputs = session.get_inputs()
        self.single_input = len(self.inputs) == 1
        outputs = session.get_outputs()
        self.output_names = [o.name for o in outputs]
        self.proba_index = next(
            (i for i, o in enumerate(outputs) if "prob" in o.name.lower()),
            1 if len(outputs) > 1 else 0,
        )

    def _feed(self, batch: Batch) -> dict[str, np.ndarray]:
        if self.single_input:
            spec = self.inputs[0]
            dtype = _NUMPY_TYPES.get(spec.type, np.float32)
            return {spec.name: batch.to_array(dtype=dtype)}
        frame = batch.to_frame()
        feed = {}
        for spec in self.inputs:
            if spec.name not in frame.columns:
                raise ModelInputError(f"the model needs a column named {spec.name!r}")
            dtype = _NUMPY_TYPES.get(spec.type, np.float32)
            try:
                feed[spec.name] = frame[spec.name].to_numpy().astype(dtype).reshape(-1, 1)
            except (TypeError, ValueError) as exc:
                raise ModelInputError(f"column {spec.name!r}: {exc}") from exc
        return feed

    def _predict(self, batch: Batch) -> Predictions:
        try:
            outputs = self.session.run(self.output_names, self._feed(batch))
        except ModelInputError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types
            if "INVALID_ARGUMENT" in str(exc):
                raise ModelInputError(str(exc)) from exc
            raise
        labels = self.manifest.class_labels or []
        if not labels:
            return Predictions(values=np.asarray(outputs[0], dtype=float).reshape(len(batch)))
        proba = outputs[self.proba_index]
        if isinstance(proba, list):  # ZipMap output: a list of {label: probability}
            return Predictions(
                probabilities=np.array([[row.get(_key(row, label), 0.0) for label in labels] for row in proba])
            )
        return Predictions(probabilities=np.asarray(proba, dtype=float))


def _key(row: dict[Any, float], label: str) -> Any:
    if label in row:
        return label
    try:
        return int(label)
    except ValueError:
        return label


def load(manifest: Manifest, files: dict[str, bytes], workdir: Path) -> LoadedModel:
    if PAYLOAD_NAME not in files:
        raise PackageError(f"corrupt: an onnx package needs payload/{PAYLOAD_NAME}")
    return OnnxModel(manifest, _session(files[PAYLOAD_NAME], manifest.name))

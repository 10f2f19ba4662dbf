"""The Open Inference Protocol's (KServe v2 / Triton REST) inference bodies. No routing here
(`openinference_api` serves them).

Inputs: typed tensors (`name`, `shape`, `datatype`, `data` flat or nested, row-major), in
one of two layouts:
  * matrix: one 2-D tensor [rows, n_features] in the model's feature order (what KServe's
    sklearn server and tritonclient users send);
  * columnar: one tensor per feature, named by the feature, shape [rows] or [rows, 1]
    (MLServer's pandas form).
Either becomes a `Batch` backed by one 2-D array (a DataFrame when a column is BYTES):
no per-row Python objects.

Outputs (the mapping KServe's sklearn server clients expect):
  * `output-0`: one prediction per row, [rows]: the value (FP64) for regression; the
    predicted class label for classifiers, INT64 when every class label is an integer
    (what scikit-learn's predict() gives KServe), else BYTES.
  * `predict_proba` (classifiers, when asked for in `outputs`): FP64 [rows, n_classes],
    columns in the model's class_labels order.
Without `outputs` only `output-0` is returned, as KServe's sklearn server does.

Binary tensor data (Triton's extension, tritonclient's default): with an
`Inference-Header-Content-Length: N` header the first N bytes of the body are the JSON and
the rest the inputs with `parameters.binary_data_size`, in order, little-endian (BOOL one
byte, BYTES each a 4-byte length then the bytes). Outputs come back binary when asked
(`parameters.binary_data` on an output, or `binary_data_output` on the request).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from deckhand.packages.manifest import Manifest
from deckhand.packages.model import Batch, Predictions
from deckhand.serving.codecs import RequestError, _check_rows

HEADER_LENGTH = "inference-header-content-length"
OUTPUT = "output-0"
PROBABILITIES = "predict_proba"

# Each datatype's numpy type (little-endian: the binary extension's byte order).
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("bool"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype("object"),
}
# The numpy kinds JSON data of each datatype family may decode to (ints are valid floats).
_JSON_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf", "O": "U"}
_KIND_NAMES = {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers", "U": "strings", "O": "mixed values"}


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass
class InferRequest:
    """A decoded inference request: the model input and what to answer with."""

    id: str | None
    batch: Batch
    outputs: list[RequestedOutput]


def output_names(manifest: Manifest) -> list[str]:
    return [OUTPUT, PROBABILITIES] if manifest.class_labels else [OUTPUT]


def label_datatype(manifest: Manifest) -> str:
    """`output-0`'s datatype: FP64 (regression), INT64 (integer class labels) or BYTES."""
    labels = manifest.class_labels
    if not labels:
        return "FP64"
    return "INT64" if all(_is_integer(label) for label in labels) else "BYTES"


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit()


# -- requests ------------------------------------------------------------------------------
def split_body(body: bytes, header_length: str) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a body (`header_length`: the header's value)."""
    if not header_length:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise RequestError(
            f"Inference-Header-Content-Length is {header_length!r}; it must be the byte length of the JSON "
            f"at the start of the body ({len(body)} bytes)"
        )
    size = int(header_length)
    return body[:size], body[size:]


def decode_request(body: bytes, header_length: str, manifest: Manifest, max_rows: int) -> InferRequest:
    """An inference request body as model input; a bad tensor is a RequestError (400)
    naming the tensor and the field, more than `max_rows` rows a 413."""
    head, binary = split_body(body, header_length)
    try:
        request = orjson.loads(head)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the inference request is not valid JSON: {exc}") from exc
    if not isinstance(request, dict):
        raise RequestError('the inference request must be a JSON object {"inputs": [tensors], ...}')
    parameters = _mapping(request.get("parameters"), '"parameters"')
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError('"inputs" must be a non-empty list of tensors {"name", "shape", "datatype", "data"}')
    screen_bools = b"true" in head or b"false" in head  # see _check_no_bools
    tensors, offset = [], 0
    for index, tensor in enumerate(inputs):
        name, array, offset = _decode_tensor(tensor, index, binary, offset, max_rows, screen_bools)
        tensors.append((name, array))
    if offset != len(binary):
        raise RequestError(
            f"the body has {len(binary) - offset} bytes after the tensors' binary data; "
            "each binary input must give its parameters.binary_data_size"
        )
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f'"id" must be a string, found {type(request_id).__name__}')
    batch = _to_batch(tensors, manifest)
    outputs = _requested_outputs(request.get("outputs"), manifest, parameters.get("binary_data_output") is True)
    return InferRequest(request_id, batch, outputs)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"{where} must be a JSON object of parameters, found {type(value).__name__}")
    return value


def _decode_tensor(
    tensor: Any, index: int, binary: bytes, offset: int, max_rows: int, screen_bools: bool
) -> tuple[str, np.ndarray, int]:
    """One input tensor's name and values (shaped), and where the next binary input starts."""
    if not isinstance(tensor, dict):
        raise RequestError(f"inputs[{index}] must be a tensor object, found {type(tensor).__name__}")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise RequestError(f'inputs[{index}]: "name" must be a non-empty string')
    where = f"input tensor {name!r}"
    datatype = tensor.get("datatype")
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise RequestError(f'{where}: "datatype" {datatype!r} is not one of {", ".join(DTYPES)}')
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(
            f'{where}: "shape" must be a list of non-negative integers like [rows, features], found {shape!r}'
        )
    _check_rows(shape[0], max_rows)
    count = math.prod(shape)
    size = _mapping(tensor.get("parameters"), f'{where}: "parameters"').get("binary_data_size")
    if size is not None:
        if "data" in tensor:
            raise RequestError(f'{where}: give "data" or parameters.binary_data_size, not both')
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise RequestError(
                f"{where}: parameters.binary_data_size {size!r} does not fit the {len(binary) - offset} binary "
                "bytes left in the body (send Inference-Header-Content-Length with binary data)"
            )
        values = _from_binary(binary[offset : offset + size], dtype, count, where)
        offset += size
    elif "data" in tensor:
        values = _from_json(tensor["data"], datatype, dtype, count, where, screen_bools)  # type: ignore[arg-type]
    else:
        raise RequestError(f'{where}: give its values in "data" (or as binary data with parameters.binary_data_size)')
    return name, values.reshape(shape), offset


def _from_json(
    data: Any, datatype: str, dtype: np.dtype[Any], count: int, where: str, screen_bools: bool
) -> np.ndarray:
    if not isinstance(data, list):
        raise RequestError(f'{where}: "data" must be a list of values (flat or nested, row-major)')
    try:
        values = np.array(data)  # numpy infers the kind; checked against the datatype below
    except ValueError as exc:  # ragged nesting
        raise RequestError(f'{where}: "data" must be a flat list or rectangular nested lists: {exc}') from exc
    if values.size != count:
        raise RequestError(f'{where}: "shape" holds {count} values, "data" has {values.size}')
    if count and values.dtype.kind not in _JSON_KINDS[dtype.kind]:
        found = _KIND_NAMES.get(values.dtype.kind, str(values.dtype))
        raise RequestError(f'{where}: datatype {datatype} needs {_KIND_NAMES[dtype.kind]} in "data", found {found}')
    if dtype.kind in "iuf" and screen_bools:
        _check_no_bools(data, where, datatype)
    if dtype.kind == "O":
        return values.ravel().astype(object)
    if dtype.kind in "iu" and count:
        info = np.iinfo(dtype)
        low, high = values.min(), values.max()
        if low < info.min or high > info.max:
            raise RequestError(f"{where}: a value ({low if low < info.min else high}) is out of {datatype}'s range")
    return values.ravel().astype(dtype)


def _check_no_bools(data: list[Any], where: str, datatype: str) -> None:
    """numpy reads [true, 1.5] as numbers: refuse booleans in a numeric tensor (only
    checked when the JSON has a true or false at all)."""
    stack = [data]
    while stack:
        for value in stack.pop():
            if isinstance(value, list):
                stack.append(value)
            elif isinstance(value, bool):
                raise RequestError(f'{where}: datatype {datatype} needs numbers in "data", found {str(value).lower()}')


def _from_binary(raw: bytes, dtype: np.dtype[Any], count: int, where: str) -> np.ndarray:
    if dtype.kind == "O":
        return _bytes_elements(raw, count, where)
    if len(raw) != count * dtype.itemsize:
        raise RequestError(
            f"{where}: {len(raw)} bytes of binary data for {count} values of {dtype.itemsize} byte(s) "
            f"(expected {count * dtype.itemsize})"
        )
    return np.frombuffer(raw, dtype=dtype)


def _bytes_elements(raw: bytes, count: int, where: str) -> np.ndarray:
    """BYTES in binary form: each element a 4-byte little-endian length, then its bytes."""
    values = np.empty(count, dtype=object)
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            raise RequestError(f"{where}: the binary BYTES data ends after {i} of {count} elements")
        (length,) = struct.unpack_from("<I", raw, offset)
        chunk = raw[offset + 4 : offset + 4 + length]
        if len(chunk) != length:
            raise RequestError(f"{where}: the binary BYTES data ends inside element {i}")
        try:
            values[i] = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(f"{where}: BYTES element {i} is not UTF-8 text: {exc}") from exc
        offset += 4 + length
    if offset != len(raw):
        raise RequestError(f"{where}: {len(raw) - offset} bytes of binary data after its {count} BYTES elements")
    return values


def _to_batch(tensors: list[tuple[str, np.ndarray]], manifest: Manifest) -> Batch:
    """The model input from the tensors: one matrix, or one column per feature."""
    features = manifest.feature_names
    name, values = tensors[0]
    # a schema-less model takes the request's columns: there a lone 1-D tensor is one column
    if len(tensors) == 1 and name not in features and (features or values.ndim != 1):
        batch = _matrix_batch(*tensors[0], features)
    else:
        batch = _columnar_batch(tensors, features)
    if not len(batch):
        raise RequestError("the input tensors hold no rows; send at least one")
    return batch


def _matrix_batch(name: str, values: np.ndarray, features: list[str]) -> Batch:
    where = f"input tensor {name!r}"
    if values.ndim != 2:
        hint = f"[1, {values.shape[0]}] for one row" if values.ndim == 1 else "[rows, features]"
        raise RequestError(
            f"{where}: shape {list(values.shape)} is not [rows, features]; send shape {hint}, or one tensor "
            f"per feature named by the feature ({', '.join(features[:10])})"
        )
    columns = features or [str(i) for i in range(values.shape[1])]  # a schema-less model
    if values.shape[1] != len(columns):
        raise RequestError(
            f"{where}: shape {list(values.shape)} has {values.shape[1]} features per row; the model takes "
            f"{len(columns)}: {', '.join(columns[:10])}"
        )
    return Batch(columns=columns, array=_model_values(values))


def _columnar_batch(tensors: list[tuple[str, np.ndarray]], features: list[str]) -> Batch:
    by_name = dict(tensors)
    if len(by_name) != len(tensors):
        raise RequestError(f"input tensors must have distinct names, found {[name for name, _ in tensors]}")
    columns = features or list(by_name)
    unknown = [name for name in by_name if name not in columns]
    missing = [name for name in columns if name not in by_name]
    if unknown or missing:
        raise RequestError(
            "one tensor per feature: "
            + (f"{unknown[:10]} are not features of the model; " if unknown else "")
            + (f"missing tensors {missing[:10]}; " if missing else "")
            + f"the model's features are {columns[:20]}"
            + (f" (and {len(columns) - 20} more)" if len(columns) > 20 else "")
            + "; or send one [rows, features] tensor"
        )
    rows = len(by_name[columns[0]])
    ordered = []
    for name in columns:
        values = by_name[name]
        if values.ndim > 2 or (values.ndim == 2 and values.shape[1] != 1) or len(values) != rows:
            raise RequestError(
                f"input tensor {name!r}: shape {list(values.shape)}; a feature tensor has shape [rows] or "
                f"[rows, 1], with the same rows ({rows}) as {columns[0]!r}"
            )
        ordered.append(values.reshape(rows))
    if any(values.dtype.kind == "O" for values in ordered):  # text columns: keep each column's type
        import pandas as pd

        return Batch(columns=columns, frame=pd.DataFrame(dict(zip(columns, ordered, strict=True))))
    return Batch(columns=columns, array=np.column_stack([v.astype(np.float64, copy=False) for v in ordered]))


def _model_values(values: np.ndarray) -> np.ndarray:
    """What the model gets: float64, or the objects of a BYTES tensor as they are."""
    return values if values.dtype.kind == "O" else values.astype(np.float64, copy=False)


def _requested_outputs(outputs: Any, manifest: Manifest, binary_default: bool) -> list[RequestedOutput]:
    known = output_names(manifest)
    if outputs is None:
        return [RequestedOutput(OUTPUT, binary_default)]
    if not isinstance(outputs, list) or not outputs:
        raise RequestError(f'"outputs" must be a non-empty list of {{"name": ...}} objects naming {known}')
    requested = []
    for index, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in known:
            raise RequestError(f"outputs[{index}]: {name!r} is not an output of this model; its outputs are {known}")
        binary = _mapping(output.get("parameters"), f"outputs[{index}].parameters").get("binary_data")
        requested.append(RequestedOutput(name, binary_default if binary is None else binary is True))
    return requested


# -- responses -----------------------------------------------------------------------------
def encode_response(
    request: InferRequest,
    predictions: Predictions,
    chosen: list[Any],
    manifest: Manifest,
    model_name: str,
    model_version: str | None,
) -> tuple[bytes, int | None]:
    """The response body, and the JSON part's length when binary outputs follow it (the
    value of the Inference-Header-Content-Length response header)."""
    rows = len(chosen)
    tensors, binary = [], []
    for output in request.outputs:
        datatype, values = _output_values(output.name, predictions, chosen, manifest)
        shape = [rows, *values.shape[1:]] if isinstance(values, np.ndarray) else [rows]
        tensor: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": shape}
        if output.binary:
            raw = _binary_values(values, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            binary.append(raw)
        else:
            tensor["data"] = values.ravel() if isinstance(values, np.ndarray) else values
        tensors.append(tensor)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = tensors
    head = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return head, None
    return b"".join([head, *binary]), len(head)


def _output_values(name: str, predictions: Predictions, chosen: list[Any], manifest: Manifest) -> tuple[str, Any]:
    """An output's datatype and values: an array, or a list of label strings (BYTES)."""
    if name == PROBABILITIES:
        return "FP64", np.asarray(predictions.probabilities, dtype=np.float64)
    datatype = label_datatype(manifest)
    if datatype == "FP64":
        return datatype, np.asarray(predictions.values, dtype=np.float64)
    if datatype == "INT64":
        number = {label: int(label) for label in manifest.class_labels or []}
        return datatype, np.fromiter((number[label] for label in chosen), dtype=np.int64, count=len(chosen))
    return datatype, [str(label) for label in chosen]


def _binary_values(values: Any, datatype: str) -> bytes:
    if datatype == "BYTES":
        encoded = [label.encode("utf-8") for label in values]
        return b"".join(struct.pack("<I", len(item)) + item for item in encoded)
    return np.ascontiguousarray(values, dtype=DTYPES[datatype]).tobytes()


def error_body(message: str) -> bytes:
    """The protocol's error response."""
    return orjson.dumps({"error": message})


# -- metadata ------------------------------------------------------------------------------
def model_metadata(name: str, version: str | None, manifest: Manifest) -> dict[str, Any]:
    """A model's metadata: the matrix input, the outputs (see the module docstring), and in
    `parameters` the feature names (the columnar layout's tensor names) and class labels."""
    features = manifest.feature_names
    outputs = [{"name": OUTPUT, "datatype": label_datatype(manifest), "shape": [-1]}]
    if manifest.class_labels:
        outputs.append({"name": PROBABILITIES, "datatype": "FP64", "shape": [-1, len(manifest.class_labels)]})
    return {
        "name": name,
        "versions": [version] if version else [],
        "platform": manifest.format,
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, len(features) if features else -1]}],
        "outputs": outputs,
        "parameters": {"feature_names": features, "class_labels": manifest.class_labels or []},
    }

"""The records that travel on a monitoring channel, and their encoding.

A record is a flat JSON object about one scoring call of one deployment. Any record may
carry the statistics part, the data part, or both (the prediction server sends both):

    {"deploymentId": "...", "modelId": "...", "ts": 1763740000.1,
     "requests": 1, "rows": 3, "latencyMs": 2.4, "userErrors": 0, "systemErrors": 0,
     "features": {"sepal_length": [5.1, 4.9, 6.2], ...},   # columnar sample
     "predictions": ["setosa", ...], "classNames": [...], "associationIds": [...]}

Channels move lists of records; a channel message or spool file holds one JSON-lines
batch, encoded here so every channel agrees on the bytes.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

Record = dict[str, Any]

# One place for the record keys.
DEPLOYMENT_ID = "deploymentId"
MODEL_ID = "modelId"
TIMESTAMP = "ts"
REQUESTS = "requests"
ROWS = "rows"
LATENCY_MS = "latencyMs"
USER_ERRORS = "userErrors"
SYSTEM_ERRORS = "systemErrors"
FEATURES = "features"
PREDICTIONS = "predictions"
CLASS_NAMES = "classNames"
ASSOCIATION_IDS = "associationIds"


def stats_record(
    deployment_id: str,
    model_id: str | None,
    num_predictions: int,
    execution_time_ms: float,
    user_errors: int = 0,
    system_errors: int = 0,
    timestamp: float | None = None,
) -> Record:
    return {
        DEPLOYMENT_ID: deployment_id,
        MODEL_ID: model_id,
        TIMESTAMP: time.time() if timestamp is None else timestamp,
        REQUESTS: 1,
        ROWS: int(num_predictions),
        LATENCY_MS: float(execution_time_ms),
        USER_ERRORS: int(user_errors),
        SYSTEM_ERRORS: int(system_errors),
    }


def columnar(features: Any) -> dict[str, list[Any]]:
    """Features as {name: [values]} from a DataFrame, a list of row dicts or a column dict."""
    if features is None:
        return {}
    if hasattr(features, "to_dict") and hasattr(features, "columns"):  # pandas DataFrame
        return {str(k): list(v) for k, v in features.to_dict(orient="list").items()}
    if isinstance(features, dict):
        return {str(k): list(v) if isinstance(v, list | tuple) else [v] for k, v in features.items()}
    if isinstance(features, list | tuple):
        columns: dict[str, list[Any]] = {}
        for index, row in enumerate(features):
            if not isinstance(row, dict):
                raise TypeError(f"features[{index}]: expected a dict per row, got {type(row).__name__}")
            for key in row:
                columns.setdefault(str(key), [None] * index)
            for key, values in columns.items():
                values.append(row.get(key))
        return columns
    raise TypeError(
        "features: expected a pandas DataFrame, a list of row dicts or a dict of columns, "
        f"got {type(features).__name__}"
    )


def _plain(value: Any) -> Any:
    """numpy scalars and arrays to JSON-able Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def data_record(
    deployment_id: str,
    model_id: str | None,
    features: Any,
    predictions: Any,
    class_names: list[str] | None = None,
    association_ids: list[Any] | None = None,
    timestamp: float | None = None,
) -> Record:
    record: Record = {
        DEPLOYMENT_ID: deployment_id,
        MODEL_ID: model_id,
        TIMESTAMP: time.time() if timestamp is None else timestamp,
        FEATURES: {k: [_plain(v) for v in values] for k, values in columnar(features).items()},
        PREDICTIONS: [_plain(p) for p in _plain(predictions)] if predictions is not None else [],
    }
    if class_names:
        record[CLASS_NAMES] = [str(c) for c in class_names]
    if association_ids is not None:
        record[ASSOCIATION_IDS] = [str(a) for a in association_ids]
    return record


def encode_batch(records: list[Record]) -> bytes:
    """JSON lines, one record per line."""
    return b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in records)


def decode_batch(data: bytes) -> list[Record]:
    """The records of a batch; a torn or corrupt line is skipped (counted by the caller)."""
    body = data.strip()
    if not body:
        return []
    try:  # fast path: one parse for the whole batch
        values = orjson.loads(b"[" + body.replace(b"\n", b",") + b"]")
        return [v for v in values if isinstance(v, dict)]
    except orjson.JSONDecodeError:
        pass
    out: list[Record] = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict):
            out.append(value)
    return out

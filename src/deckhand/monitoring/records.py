"""The records that travel on a monitoring channel, and their encoding.

A record is a flat JSON object about one scoring call of one deployment. Any record may
carry the statistics part, the data part, or both (the prediction server sends both):

    {"deploymentId": "...", "modelId": "...", "ts": 1763740000.1,
     "requests": 1, "rows": 3, "latencyMs": 2.4, "userErrors": 0, "systemErrors": 0,
     "features": {"sepal_length": [5.1, 4.9, 6.2], ...},   # columnar sample
     "predictions": ["setosa", ...], "classNames": [...], "associationIds": [...]}

Channels move lists of records; a channel message or spool file holds one JSON-lines
batch, encoded here so every channel agrees on the bytes. On the way, raw records of one
deployment, model, shadow flag and minute are folded into a columnar *block* (one line for up to
BLOCK_RECORDS records), so that the tracking agent -- one process for many prediction
servers -- parses a few long arrays and sums them with numpy instead of filing each
record's values one by one:

    {"kind": "columns", "deploymentId": "...", "modelId": "...", "minuteStart": 1763740020,
     "shadow": true,                              # only when its records are (a challenger's)
     "records": 3,                                # raw records folded in
     "requests": [1, 1], "rows": [3, 1], "userErrors": [0, 0], "systemErrors": [0, 1],
     "latencyMs": [2.4, 0.9],                     # one entry per record with statistics
     "features": {"sepal_length": [5.1, 4.9, 6.2, 5.0], ...},   # values of all records
     "predictions": [...], "classNames": [...], "associationIds": [...],
     "comparedRows": 4, "agreedRows": 3, "absDiffSum": 0.5}   # sums, only when non-zero

Predictions with association ids, and actuals, travel as items of their own kind, which no
block folds and the tracking agent passes on as they are (docs/accuracy.md):

    {"kind": "scored", "deploymentId": "...", "modelId": "...", "ts": 1763740000.1,
     "associationIds": ["a1", "a2"], "predictions": [3.2, 1.0],   # or labels, or
     "classNames": ["no", "yes"]}                 # probability lists in classNames order
    {"kind": "actuals", "deploymentId": "...",
     "data": [{"associationId": "a1", "actualValue": 3.0, "timestamp": "..."}]}

Timestamps are kept to the minute, the resolution of every aggregate downstream. A record
that is not a well-formed raw record travels as it is, for the agent to judge.
"""

from __future__ import annotations

import math
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
# A model's role in its deployment's traffic: a shadow (challenger) record was scored on a
# copy of a request and never answered it, so it counts for its model only, not for the
# deployment; compared/agreed count rows checked against the champion's answers, and
# absDiffSum sums |challenger - champion| over compared regression rows.
SHADOW = "shadow"
COMPARED_ROWS = "comparedRows"
AGREED_ROWS = "agreedRows"
ABS_DIFF_SUM = "absDiffSum"
# ... and those an aggregate adds (deckhand.monitoring.aggregate: one per source, deployment,
# model, shadow flag and minute, with `latency`, `features` and `predictions` as mergeable counts).
SOURCE_ID = "sourceId"
MINUTE = "minute"
LATENCY = "latency"


SCORED_KIND = "scored"
ACTUALS_KIND = "actuals"
ACTUALS_DATA = "data"
PASSTHROUGH_KINDS = frozenset((SCORED_KIND, ACTUALS_KIND))


def scored_record(
    deployment_id: str,
    model_id: str | None,
    association_ids: list[str],
    predictions: list[Any],
    class_names: list[str] | None = None,
    timestamp: float | None = None,
) -> Record:
    """Each row's prediction under its association id, for accuracy once actuals arrive:
    numbers (regression), labels, or probability lists in `class_names` order."""
    record: Record = {
        "kind": SCORED_KIND,
        DEPLOYMENT_ID: deployment_id,
        MODEL_ID: model_id,
        TIMESTAMP: time.time() if timestamp is None else timestamp,
        ASSOCIATION_IDS: association_ids,
        PREDICTIONS: predictions,
    }
    if class_names:
        record[CLASS_NAMES] = [str(c) for c in class_names]
    return record


def actuals_record(deployment_id: str, actuals: list[dict[str, Any]]) -> Record:
    """Actuals (`associationId`, `actualValue`, optional `timestamp`) sent over the channel
    by an environment that cannot reach the control plane itself."""
    return {"kind": ACTUALS_KIND, DEPLOYMENT_ID: deployment_id, ACTUALS_DATA: actuals}


def scored_from_data(record: Record) -> Record | None:
    """The scored item a data record (or block) with association ids stands for (the MLOps
    library's `report_predictions_data(..., association_ids=...)`); None without ids."""
    ids, predictions = record.get(ASSOCIATION_IDS), record.get(PREDICTIONS)
    if not ids or not isinstance(ids, list) or not isinstance(predictions, list) or len(ids) != len(predictions):
        return None
    pairs = [(str(i), p) for i, p in zip(ids, predictions, strict=True) if i is not None]
    if not pairs:
        return None
    ts = record.get(TIMESTAMP, record.get(MINUTE_START))
    return scored_record(
        record[DEPLOYMENT_ID], record.get(MODEL_ID), [i for i, _ in pairs], [p for _, p in pairs],
        record.get(CLASS_NAMES), ts,
    )  # fmt: skip


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


BLOCK_KIND = "columns"
BLOCK_RECORDS = 5_000
MINUTE_START = "minuteStart"
_RAW_KEYS = frozenset(
    (DEPLOYMENT_ID, MODEL_ID, TIMESTAMP, REQUESTS, ROWS, LATENCY_MS, USER_ERRORS, SYSTEM_ERRORS)
    + (FEATURES, PREDICTIONS, CLASS_NAMES, ASSOCIATION_IDS, SHADOW, COMPARED_ROWS, AGREED_ROWS, ABS_DIFF_SUM)
)
COUNT_KEYS = (REQUESTS, ROWS, USER_ERRORS, SYSTEM_ERRORS)
# A challenger's comparison with the champion: summed, not listed per record.
COMPARISON_KEYS = (COMPARED_ROWS, AGREED_ROWS, ABS_DIFF_SUM)


def comparison(record: Record) -> tuple[int, int, float] | None:
    """A record's (comparedRows, agreedRows, absDiffSum); None without any; a TypeError
    when one is not a non-negative count (the sum: a non-negative finite number)."""
    compared, agreed, diff = record.get(COMPARED_ROWS), record.get(AGREED_ROWS), record.get(ABS_DIFF_SUM)
    if compared is None and agreed is None and diff is None:
        return None
    compared, agreed, diff = compared or 0, agreed or 0, diff or 0
    if type(compared) is not int or type(agreed) is not int or compared < 0 or agreed < 0:
        raise TypeError(f"{COMPARED_ROWS} and {AGREED_ROWS} must be non-negative integers")
    if type(diff) not in (int, float) or not 0 <= diff < math.inf:
        raise TypeError(f"{ABS_DIFF_SUM} must be a non-negative finite number")
    return compared, agreed, float(diff)


def shadow_flag(record: Record) -> bool:
    """A record's shadow flag (absent or null: false); a TypeError when it is not a bool."""
    shadow = record.get(SHADOW)
    if shadow is None:
        return False
    if type(shadow) is not bool:
        raise TypeError(f"{SHADOW} must be true or false")
    return shadow


def is_block(item: Record) -> bool:
    return item.get("kind") == BLOCK_KIND


def record_count(items: list[Record]) -> int:
    """How many records a decoded batch stands for (a block counts its records)."""
    return sum(item["records"] if is_block(item) else 1 for item in items)


def _foldable(record: Record) -> bool:
    """Whether a record is a well-formed raw record (anything else travels unchanged)."""
    if not isinstance(record, dict) or not record.keys() <= _RAW_KEYS:
        return False
    deployment_id, model_id, ts = record.get(DEPLOYMENT_ID), record.get(MODEL_ID), record.get(TIMESTAMP)
    if type(deployment_id) is not str or not deployment_id or not (model_id is None or type(model_id) is str):
        return False
    if type(ts) not in (int, float) or not math.isfinite(ts):
        return False
    try:
        shadow_flag(record)
        comparison(record)
    except TypeError:
        return False
    if record.get(REQUESTS):
        for key in COUNT_KEYS:
            value = record.get(key) or 0
            if type(value) is not int or value < 0:
                return False
        latency = record.get(LATENCY_MS)
        if latency is not None and type(latency) not in (int, float):
            return False
    features, predictions = record.get(FEATURES), record.get(PREDICTIONS)
    if features is not None and not isinstance(features, dict):
        return False
    if predictions is not None and not isinstance(predictions, list):
        return False
    for key in (CLASS_NAMES, ASSOCIATION_IDS):
        if record.get(key) is not None and not isinstance(record[key], list):
            return False
    return True


def to_blocks(records: list[Record]) -> list[Record]:
    """Raw records folded into blocks per deployment, model, shadow flag and minute, in
    first-seen order; every other record kept as it is, in place."""
    out: list[Record] = []
    open_blocks: dict[tuple[str, str | None, bool, int], Record] = {}
    for record in records:
        if not _foldable(record):
            out.append(record)
            continue
        key = (
            record[DEPLOYMENT_ID],
            record.get(MODEL_ID),
            record.get(SHADOW) is True,
            int(record[TIMESTAMP] // 60) * 60,
        )
        block = open_blocks.get(key)
        if block is None or block["records"] >= BLOCK_RECORDS:
            block = open_blocks[key] = {
                "kind": BLOCK_KIND,
                DEPLOYMENT_ID: key[0],
                MODEL_ID: key[1],
                MINUTE_START: key[3],
                "records": 0,
            }
            if key[2]:
                block[SHADOW] = True
            out.append(block)
        _fold(block, record)
    return out


def _fold(block: Record, record: Record) -> None:
    block["records"] += 1
    if COMPARED_ROWS in record or AGREED_ROWS in record or ABS_DIFF_SUM in record:
        for key in COMPARISON_KEYS:
            block[key] = block.get(key, 0) + (record.get(key) or 0)
    if record.get(REQUESTS):
        for key in COUNT_KEYS:
            block.setdefault(key, []).append(record.get(key) or 0)
        if record.get(LATENCY_MS) is not None:
            block.setdefault(LATENCY_MS, []).append(record[LATENCY_MS])
    features = record.get(FEATURES)
    if features:
        columns = block.setdefault(FEATURES, {})
        for name, values in features.items():
            column = columns.setdefault(str(name), [])
            if type(values) is not list and hasattr(values, "tolist"):  # a numpy column
                values = values.tolist()
            if type(values) is list:
                column.extend(values)
            else:
                column.append(values)
    predictions = record.get(PREDICTIONS)
    ids = record.get(ASSOCIATION_IDS)
    if predictions or ids:
        block_predictions = block.setdefault(PREDICTIONS, [])
        if ids is not None or ASSOCIATION_IDS in block:
            # association ids stay aligned with predictions (None where a record had none)
            block_ids = block.setdefault(ASSOCIATION_IDS, [None] * len(block_predictions))
            block_ids.extend(ids if ids is not None else [None] * len(predictions or ()))
        block_predictions.extend(predictions or ())
    if record.get(CLASS_NAMES) and CLASS_NAMES not in block:
        block[CLASS_NAMES] = record[CLASS_NAMES]


def encode_batch(records: list[Record]) -> bytes:
    """JSON lines: raw records folded into columnar blocks, anything else one per line."""
    return b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in to_blocks(records))


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

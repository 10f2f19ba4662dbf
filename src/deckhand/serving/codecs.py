"""Request and response bodies: CSV or JSON in, JSON (or CSV) out. No routing here.

Inputs
  * JSON: a list of records `[{"feature": value, ...}, ...]`, or `{"data": [records]}`,
    or pandas' split form `{"columns": [...], "data": [[...], ...]}`.
  * CSV: comma-delimited with a header row.
Output (JSON)
  `{"data": [{"rowId", "prediction", "predictionValues": [{"label", "value"}],
  "predictionThreshold"}]}` — the threshold only for binary models.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import orjson

from deckhand.packages.manifest import Manifest
from deckhand.packages.model import Batch, Predictions

BINARY_THRESHOLD = 0.5
CSV_TYPES = ("text/csv", "text/plain", "application/csv")
JSON_TYPES = ("application/json", "text/json")
_LARGE_CSV = 256 * 1024  # above this, pandas' C parser beats the csv module


class RequestError(ValueError):
    """The request body cannot be read as model input; status is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _cell(value: str) -> Any:
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _columns_for(manifest: Manifest, seen: list[str]) -> list[str]:
    """The model's feature order; a schema-less model takes the request's own columns."""
    return manifest.feature_names or seen


def _missing_error(missing: list[str], where: str) -> RequestError:
    return RequestError(
        f"{where} lacks the model's features {missing[:10]}"
        + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else "")
        + "; send every feature listed by GET .../info",
        status=422,
    )


def decode_records(records: list[Any], manifest: Manifest) -> Batch:
    if not records:
        raise RequestError("the request holds no rows; send at least one record")
    first = records[0]
    if not isinstance(first, dict):
        raise RequestError(f"rows must be JSON objects mapping feature names to values, found {type(first).__name__}")
    columns = _columns_for(manifest, list(first))
    try:
        rows = [[record[name] for name in columns] for record in records]
    except KeyError as exc:
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise RequestError(f"row {index} is not a JSON object") from exc
            missing = [name for name in columns if name not in record]
            if missing:
                raise _missing_error(missing, f"row {index}") from exc
        raise
    except TypeError as exc:
        raise RequestError("every row must be a JSON object") from exc
    return Batch(columns=columns, rows=rows)


def decode_json(body: bytes, manifest: Manifest) -> Batch:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from exc
    if isinstance(data, list):
        return decode_records(data, manifest)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        if "columns" in data:  # pandas split orientation
            given = [str(c) for c in data["columns"]]
            rows = data["data"]
            if given == manifest.feature_names and all(
                isinstance(row, list) and len(row) == len(given) for row in rows
            ):  # already in the model's order: take the rows as they are, no per-row dicts
                if not rows:
                    raise RequestError("the request holds no rows; send at least one record")
                return Batch(columns=given, rows=rows)
            records = [dict(zip(given, row, strict=False)) for row in data["data"]]
            return decode_records(records, manifest)
        return decode_records(data["data"], manifest)
    raise RequestError(
        'JSON input must be a list of records, {"data": [records]}, or {"columns": [...], "data": [[...]]}'
    )


def decode_csv(body: bytes, manifest: Manifest) -> Batch:
    if len(body) > _LARGE_CSV:
        return _decode_csv_pandas(body, manifest)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(f"CSV input must be UTF-8: {exc}") from exc
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise RequestError("the CSV body is empty; send a header row and at least one row")
    header = [h.strip() for h in header]
    columns = _columns_for(manifest, header)
    position = {name: i for i, name in enumerate(header)}
    missing = [name for name in columns if name not in position]
    if missing:
        raise _missing_error(missing, "the CSV header")
    picks = [position[name] for name in columns]
    rows = []
    for number, line in enumerate(reader, start=2):
        if not line:
            continue
        if len(line) != len(header):
            raise RequestError(f"CSV line {number} has {len(line)} fields, the header has {len(header)}")
        rows.append([_cell(line[i]) for i in picks])
    if not rows:
        raise RequestError("the CSV body has a header but no rows")
    return Batch(columns=columns, rows=rows)


def _decode_csv_pandas(body: bytes, manifest: Manifest) -> Batch:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, pd.errors.ParserError) as exc:
        raise RequestError(f"the body is not a readable CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    columns = _columns_for(manifest, list(frame.columns))
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise _missing_error(missing, "the CSV header")
    if frame.empty:
        raise RequestError("the CSV body has a header but no rows")
    return Batch(columns=columns, frame=frame[columns])


def decode(body: bytes, content_type: str, manifest: Manifest) -> Batch:
    """Read a request body as model input according to its Content-Type."""
    media = _media_type(content_type)
    if media in CSV_TYPES:
        return decode_csv(body, manifest)
    if media in JSON_TYPES or media == "":
        stripped = body.lstrip()[:1]
        if media == "" and stripped not in (b"[", b"{"):
            return decode_csv(body, manifest)
        return decode_json(body, manifest)
    raise RequestError(
        f"Content-Type {media!r} is not supported; send text/csv or application/json",
        status=415,
    )


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def prediction_labels(predictions: Predictions, manifest: Manifest) -> list[Any]:
    """One prediction per row: the value (regression) or the predicted class label."""
    labels = manifest.class_labels
    if not labels or predictions.probabilities is None:
        values = predictions.values if predictions.values is not None else np.array([])
        return values.tolist()
    proba = predictions.probabilities
    if len(proba) <= 4:  # a few rows: plain Python beats numpy's per-call overhead (same ties: first max)
        rows = proba.tolist()
        if manifest.target_type == "binary":
            return [labels[1] if r[1] >= BINARY_THRESHOLD else labels[0] for r in rows]
        return [labels[r.index(max(r))] for r in rows]
    if manifest.target_type == "binary":
        positive = proba[:, 1] >= BINARY_THRESHOLD
        return [labels[1] if p else labels[0] for p in positive.tolist()]
    return [labels[i] for i in np.argmax(proba, axis=1).tolist()]


def encode_json(predictions: Predictions, manifest: Manifest, chosen: list[Any] | None = None) -> bytes:
    """The JSON response; `chosen` is prediction_labels() when the caller has it already."""
    labels = manifest.class_labels
    if chosen is None:
        chosen = prediction_labels(predictions, manifest)
    rows: list[dict[str, Any]]
    if not labels or predictions.probabilities is None:
        target = manifest.name
        rows = [
            {
                "rowId": i,
                "prediction": value,
                "predictionValues": [{"label": target, "value": value}],
            }
            for i, value in enumerate(chosen)
        ]
    else:
        binary = manifest.target_type == "binary"
        rows = []
        for i, (label, probs) in enumerate(zip(chosen, predictions.probabilities.tolist(), strict=True)):
            row: dict[str, Any] = {
                "rowId": i,
                "prediction": label,
                "predictionValues": [{"label": name, "value": p} for name, p in zip(labels, probs, strict=True)],
            }
            if binary:
                row["predictionThreshold"] = BINARY_THRESHOLD
            rows.append(row)
    return orjson.dumps({"data": rows}, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_csv(predictions: Predictions, manifest: Manifest, chosen: list[Any] | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    labels = manifest.class_labels
    if chosen is None:
        chosen = prediction_labels(predictions, manifest)
    if not labels or predictions.probabilities is None:
        writer.writerow(["rowId", "prediction"])
        writer.writerows((i, v) for i, v in enumerate(chosen))
    else:
        binary = manifest.target_type == "binary"
        writer.writerow(
            ["rowId", "prediction", *(f"{label}_PREDICTION" for label in labels)]
            + (["THRESHOLD", "POSITIVE_CLASS"] if binary else [])
        )
        for i, (label, probs) in enumerate(zip(chosen, predictions.probabilities.tolist(), strict=True)):
            writer.writerow([i, label, *probs] + ([BINARY_THRESHOLD, labels[1]] if binary else []))
    return out.getvalue().encode("utf-8")


def wants_csv(accept: str) -> bool:
    return _media_type(accept) in ("text/csv", "application/csv")

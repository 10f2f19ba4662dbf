"""Request and response bodies: CSV or JSON in, JSON (or CSV) out. No routing here.

Inputs
  * JSON: a list of records `[{"feature": value, ...}, ...]`, or `{"data": [records]}`,
    or pandas' split form `{"columns": [...], "data": [[...], ...]}`.
  * CSV: comma-delimited with a header row.
Output (JSON)
  `{"data": [{"rowId", "associationId", "prediction", "predictionValues": [{"label", "value"}],
  "predictionThreshold"}]}` — the threshold only for binary models, the association id only
  for deployments that give rows one (`association`).
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
# Above this a body is decoded off the event loop, and a CSV by pandas' C parser (faster
# than the csv module there).
LARGE_BODY = 256 * 1024


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


def _check_rows(count: int, max_rows: int | None) -> None:
    if max_rows is not None and count > max_rows:
        raise RequestError(
            f"the request has {count} rows, over the limit of {max_rows} (--max-rows); split it", status=413
        )


# A cell is a number, a string or null. JSON's true/false are refused rather than read as 1/0.
_CELL_TYPES = (int, float, str, type(None))
_JSON_KIND = {list: "array", dict: "object", bool: "boolean", int: "number", float: "number", str: "string"}


def _check_cells(rows: list[list[Any]], columns: list[str], where: str = "row") -> None:
    """Name the first cell that is not a number, a string or null (a 400, not a model error)."""
    for index, row in enumerate(rows):
        for name, value in zip(columns, row, strict=False):
            if type(value) not in _CELL_TYPES:
                raise RequestError(
                    f"{where} {index}, feature {name!r}: a JSON {_JSON_KIND.get(type(value), 'value')} "
                    "is not a feature value; "
                    "send a number, a string or null (booleans as 1/0)"
                )


def _booleans_possible(body: bytes) -> bool:
    """A cheap screen: numpy reads a JSON true/false in numeric rows as 1.0/0.0, so a body
    that may hold one has its cells checked even when the rows make a float array."""
    return b"true" in body or b"false" in body


def _batch(columns: list[str], rows: list[list[Any]]) -> Batch:
    """All-numeric rows become one float array (what most models take, built in C);
    rows holding strings or nulls stay Python rows for the model's own conversion."""
    try:
        array = np.array(rows)
    except ValueError:  # ragged: the caller's checks name the row
        return Batch(columns=columns, rows=rows)
    if array.dtype.kind in "fiu" and array.ndim == 2 and array.shape[1] == len(columns):
        return Batch(columns=columns, array=array.astype(np.float64, copy=False))
    return Batch(columns=columns, rows=rows)


def _checked_batch(columns: list[str], rows: list[list[Any]], booleans: bool) -> Batch:
    """The batch of `rows`; cells are checked one by one (naming a boolean, array or object)
    only when the rows did not make a float array or the body may hold a boolean."""
    batch = _batch(columns, rows)
    if booleans or batch.array is None:
        _check_cells(rows, columns)
    return batch


def decode_records(records: list[Any], manifest: Manifest, booleans: bool = True) -> Batch:
    """A list of {feature: value} records."""
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
        index = next(i for i, record in enumerate(records) if not isinstance(record, dict))
        raise RequestError(f"row {index} is not a JSON object mapping feature names to values") from exc
    return _checked_batch(columns, rows, booleans)


def _decode_split(data: dict[str, Any], manifest: Manifest, booleans: bool) -> Batch:
    """pandas' split orientation: {"columns": [names], "data": [[values], ...]}."""
    given = data["columns"]
    if not isinstance(given, list) or not all(isinstance(c, str) for c in given):
        raise RequestError('"columns" must be a list of feature names (strings)')
    rows = data["data"]
    if not rows:
        raise RequestError("the request holds no rows; send at least one record")
    in_order = given == manifest.feature_names or not manifest.feature_names  # no per-row dicts needed
    batch = _batch(given, rows) if in_order else None
    if batch is not None and batch.array is not None and not booleans:
        return batch  # every row a list of `len(given)` numbers: nothing left to check
    width = len(given)
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            found = f"a list of {len(row)}" if isinstance(row, list) else f"a JSON {_JSON_KIND.get(type(row), 'value')}"
            raise RequestError(f'"data" row {index} must be a list of {width} values (one per column), found {found}')
    _check_cells(rows, given)
    if batch is not None:
        return batch
    return decode_records([dict(zip(given, row, strict=True)) for row in rows], manifest, booleans=False)


def decode_json(body: bytes, manifest: Manifest, max_rows: int | None = None) -> Batch:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from exc
    booleans = _booleans_possible(body)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        records = data["data"]
        _check_rows(len(records), max_rows)
        if "columns" in data:
            return _decode_split(data, manifest, booleans)
        return decode_records(records, manifest, booleans)
    if isinstance(data, list):
        _check_rows(len(data), max_rows)
        return decode_records(data, manifest, booleans)
    raise RequestError(
        'JSON input must be a list of records, {"data": [records]}, or {"columns": [...], "data": [[...]]}'
    )


def _ragged_error(number: int, found: int, expected: int) -> RequestError:
    return RequestError(f"CSV line {number} has {found} fields, the header has {expected}")


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(f"CSV input must be UTF-8: {exc}") from exc


def _numeric_csv_rows(body: bytes) -> tuple[bytes, list[list[Any]]] | None:
    """The header line and the rows of an all-numeric CSV, or None when it needs the csv
    module. Unquoted numeric CSV lines are JSON arrays without their brackets, and orjson
    reads numbers several times faster than float() does; any other cell (text, an empty
    cell, nan), a quote or a stray carriage return makes the JSON invalid or the check
    fail, and the general reader takes over and gives its usual answer or error."""
    if b'"' in body:
        return None
    body = body.replace(b"\r\n", b"\n").rstrip(b"\n")
    end = body.find(b"\n")
    if end < 0 or b"\r" in body or b"\n\n" in body:
        return None
    try:
        rows = orjson.loads(b"[[" + body[end + 1 :].replace(b"\n", b"],[") + b"]]")
    except orjson.JSONDecodeError:
        return None
    return body[:end], rows


def _decode_numeric_csv(body: bytes, manifest: Manifest, max_rows: int | None) -> Batch | None:
    found = _numeric_csv_rows(body)
    if found is None:
        return None
    head, rows = found
    header = [h.strip() for h in _text(head).split(",")]
    try:
        array = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):  # ragged, or a value JSON reads but a CSV would not (true)
        return None
    if array.ndim != 2 or array.shape[1] != len(header) or len(set(header)) != len(header):
        return None
    _check_rows(len(array), max_rows)
    columns = _columns_for(manifest, header)
    if columns == header:
        return Batch(columns=columns, array=array)
    position = {name: i for i, name in enumerate(header)}
    missing = [name for name in columns if name not in position]
    if missing:
        raise _missing_error(missing, "the CSV header")
    return Batch(columns=columns, array=array[:, [position[name] for name in columns]])


def decode_csv(body: bytes, manifest: Manifest, max_rows: int | None = None) -> Batch:
    if len(body) > LARGE_BODY:
        return _decode_csv_pandas(body, manifest, max_rows)
    fast = _decode_numeric_csv(body, manifest, max_rows)
    if fast is not None:
        return fast
    reader = csv.reader(io.StringIO(_text(body)))
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
            raise _ragged_error(number, len(line), len(header))
        rows.append([_cell(line[i]) for i in picks])
    if not rows:
        raise RequestError("the CSV body has a header but no rows")
    _check_rows(len(rows), max_rows)
    return _batch(columns, rows)


def _find_ragged_line(body: bytes, width: int, newlines: int) -> None:
    """Raise for the first line whose field count is not `width` (the csv module's reading,
    so that large bodies fail exactly as small ones do). Blank lines are skipped by both.
    `newlines` is body.count(b"\n"), which the caller has already paid for."""
    if b'"' not in body:
        # No quoting: a line's fields are its commas + 1. One C-level count over the whole
        # body settles the usual case; otherwise check slices of lines with two counts each
        # and read line by line only a slice that does not add up.
        commas = width - 1
        if body.count(b",") == commas * (newlines + (0 if body.endswith(b"\n") else 1)):
            return
        start, end = 0, len(body)
        line_number = 1
        while start < end:
            stop = body.find(b"\n", min(start + (1 << 20), end))
            stop = end if stop < 0 else stop + 1
            lines = body.count(b"\n", start, stop) + (0 if body.endswith(b"\n", start, stop) else 1)
            if body.count(b",", start, stop) != commas * lines:
                for offset, line in enumerate(body[start:stop].splitlines()):
                    found = line.count(b",") + 1
                    if line.strip() and found != width:
                        raise _ragged_error(line_number + offset, found, width)
            line_number += lines
            start = stop
        return
    for number, line in enumerate(csv.reader(io.StringIO(_text(body))), start=1):
        if line and len(line) != width:
            raise _ragged_error(number, len(line), width)


def _decode_csv_pandas(body: bytes, manifest: Manifest, max_rows: int | None) -> Batch:
    import pandas as pd

    lines = body.count(b"\n")
    if b'"' not in body:  # no quoted newlines: the line count bounds the rows before parsing
        _check_rows(lines - 1 + (0 if body.endswith(b"\n") else 1), max_rows)
    header_end = body.find(b"\n")
    header = next(csv.reader(io.StringIO(_text(body[: header_end if header_end >= 0 else len(body)]))), [])
    _find_ragged_line(body, len(header), lines)
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
    _check_rows(len(frame), max_rows)
    return Batch(columns=columns, frame=frame[columns])


def decode(body: bytes, content_type: str, manifest: Manifest, max_rows: int | None = None) -> Batch:
    """Read a request body as model input according to its Content-Type; more than
    `max_rows` rows is a 413."""
    media = _media_type(content_type)
    if media in CSV_TYPES:
        return decode_csv(body, manifest, max_rows)
    if media in JSON_TYPES or media == "":
        stripped = body.lstrip()[:1]
        if media == "" and stripped not in (b"[", b"{"):
            return decode_csv(body, manifest, max_rows)
        return decode_json(body, manifest, max_rows)
    raise RequestError(
        f"Content-Type {media!r} is not supported; send text/csv or application/json",
        status=415,
    )


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


# Responses are built column by column: each column of numbers is formatted by one orjson
# call over its array, and the rows are spliced together from those tokens and constant
# pieces by list slicing and one join. No per-row dict, list or float object is created,
# so a 1,000,000-row response costs neither the time nor the garbage collector's pauses
# that building row objects did, and the JSON is byte for byte what orjson writes for
# those objects.
Column = bytes | list[bytes]  # the same text in every row, or one text per row

# A streamed JSON response is JSON_OPEN, the chunks' rows joined by commas, JSON_CLOSE.
JSON_OPEN, JSON_CLOSE = b'{"data":[', b"]}"


def _number_tokens(array: np.ndarray) -> list[bytes]:
    """Each number of a 1-D array as orjson writes it (NaN and infinities as null)."""
    if not len(array):
        return []
    return orjson.dumps(np.ascontiguousarray(array), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")


def _rows_text(count: int, columns: list[Column], separator: bytes, after_last: bool) -> bytes:
    """`count` rows, each the concatenation of `columns`, with `separator` between rows."""
    if not count:
        return b""
    merged: list[Column] = []
    for column in columns:  # adjacent constants become one piece
        if isinstance(column, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += column
        else:
            merged.append(column)
    stride = len(merged) + 1
    parts: list[bytes] = [separator] * (count * stride)
    for offset, column in enumerate(merged):
        parts[offset::stride] = column if isinstance(column, list) else [column] * count
    if not after_last:
        parts.pop()
    return b"".join(parts)


def _row_ids(first_row: int, count: int) -> list[bytes]:
    return _number_tokens(np.arange(first_row, first_row + count))


def _label_tokens(chosen: list[Any], encode: Any) -> list[bytes]:
    text = {label: encode(label) for label in set(chosen)}
    return [text[label] for label in chosen]


def _with_ids(columns: list[Column], ids: list[str] | None) -> list[Column]:
    """JSON row columns with `"associationId"` after the row ids (the first two columns)."""
    if ids is None:
        return columns
    return [*columns[:2], b',"associationId":', [orjson.dumps(i) for i in ids], *columns[2:]]


def _json_columns(predictions: Predictions, manifest: Manifest, chosen: list[Any], first_row: int) -> list[Column]:
    count = len(chosen)
    labels = manifest.class_labels
    if not labels or predictions.probabilities is None:
        values = _number_tokens(np.asarray(predictions.values, dtype=float))
        target = orjson.dumps(manifest.name)
        return [
            b'{"rowId":',
            _row_ids(first_row, count),
            b',"prediction":',
            values,
            b',"predictionValues":[{"label":' + target + b',"value":',
            values,
            b"}]}",
        ]
    proba = predictions.probabilities
    columns: list[Column] = [
        b'{"rowId":',
        _row_ids(first_row, count),
        b',"prediction":',
        _label_tokens(chosen, orjson.dumps),
        b',"predictionValues":[',
    ]
    for index, label in enumerate(labels):
        columns += [
            (b"," if index else b"") + b'{"label":' + orjson.dumps(label) + b',"value":',
            _number_tokens(proba[:, index]),
            b"}",
        ]
    threshold = b',"predictionThreshold":' + orjson.dumps(BINARY_THRESHOLD) if _binary(manifest) else b""
    columns.append(b"]" + threshold + b"}")
    return columns


def _binary(manifest: Manifest) -> bool:
    return manifest.target_type == "binary"


# Up to this many rows, building the row objects and one orjson call is faster than the
# per-column calls (tests/serving/test_codecs.py checks both give the same bytes).
FEW_ROWS = 8


def _row_objects(
    predictions: Predictions, manifest: Manifest, chosen: list[Any], ids: list[str] | None = None
) -> list[dict[str, Any]]:
    rows = _plain_row_objects(predictions, manifest, chosen)
    if ids is not None:
        rows = [{"rowId": row.pop("rowId"), "associationId": i, **row} for row, i in zip(rows, ids, strict=True)]
    return rows


def _plain_row_objects(predictions: Predictions, manifest: Manifest, chosen: list[Any]) -> list[dict[str, Any]]:
    labels = manifest.class_labels
    if not labels or predictions.probabilities is None:
        target = manifest.name
        return [
            {"rowId": i, "prediction": value, "predictionValues": [{"label": target, "value": value}]}
            for i, value in enumerate(chosen)
        ]
    binary = _binary(manifest)
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
    return rows


def encode_json(
    predictions: Predictions, manifest: Manifest, chosen: list[Any] | None = None, ids: list[str] | None = None
) -> bytes:
    """The JSON response; `chosen` is prediction_labels() when the caller has it already,
    `ids` the rows' association ids when the deployment gives them."""
    if chosen is None:
        chosen = prediction_labels(predictions, manifest)
    if len(chosen) <= FEW_ROWS:
        rows = _row_objects(predictions, manifest, chosen, ids)
        return orjson.dumps({"data": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
    return JSON_OPEN + encode_json_rows(predictions, manifest, chosen, 0, ids) + JSON_CLOSE


def encode_json_rows(
    predictions: Predictions,
    manifest: Manifest,
    chosen: list[Any] | None,
    first_row: int,
    ids: list[str] | None = None,
) -> bytes:
    """The row objects of the JSON response from `first_row` on, comma-separated."""
    if chosen is None:
        chosen = prediction_labels(predictions, manifest)
    columns = _with_ids(_json_columns(predictions, manifest, chosen, first_row), ids)
    return _rows_text(len(chosen), columns, b",", False)


def _csv_field(value: Any) -> bytes:
    """A label as the csv module writes it (quoted only when it must be)."""
    text = str(value)
    if any(c in text for c in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text.encode("utf-8")


def _csv_numbers(array: np.ndarray) -> list[bytes]:
    tokens = _number_tokens(np.asarray(array, dtype=float))
    return [b"" if t == b"null" else t for t in tokens] if b"null" in tokens else tokens


def encode_csv(
    predictions: Predictions,
    manifest: Manifest,
    chosen: list[Any] | None = None,
    first_row: int = 0,
    header: bool = True,
    association_ids: list[str] | None = None,
) -> bytes:
    """The CSV response (or, with `first_row` and `header=False`, a later chunk of it).
    Missing numbers are empty fields; `association_ids` a column after rowId."""
    labels = manifest.class_labels
    if chosen is None:
        chosen = prediction_labels(predictions, manifest)
    count = len(chosen)
    ids = _row_ids(first_row, count)
    if not labels or predictions.probabilities is None:
        head = b"rowId,prediction\n"
        columns: list[Column] = [ids, b",", _csv_numbers(np.asarray(predictions.values, dtype=float))]
    else:
        binary = _binary(manifest)
        names = [f"{label}_PREDICTION" for label in labels] + (["THRESHOLD", "POSITIVE_CLASS"] if binary else [])
        head = b",".join(_csv_field(name) for name in ["rowId", "prediction", *names]) + b"\n"
        columns = [ids, b",", _label_tokens(chosen, _csv_field)]
        for index in range(len(labels)):
            columns += [b",", _csv_numbers(predictions.probabilities[:, index])]
        if binary:
            columns.append(b"," + orjson.dumps(BINARY_THRESHOLD) + b"," + _csv_field(labels[1]))
    if association_ids is not None:
        head = head.replace(b"rowId,", b"rowId,associationId,", 1)
        columns = [columns[0], b",", [_csv_field(i) for i in association_ids], *columns[1:]]
    return (head if header else b"") + _rows_text(count, columns, b"\n", True)


def wants_csv(accept: str) -> bool:
    return _media_type(accept) in ("text/csv", "application/csv")

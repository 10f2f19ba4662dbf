"""Association ids of a request's rows, for a deployment that has them (docs/accuracy.md).

The id column is rarely a model feature, so the decoder (`codecs`) never keeps it: it is
read here from the body, only for deployments whose mix names a column. A row without one
gets a generated id when the deployment allows it; otherwise the request is a 422 naming
the row and the column. Ids go back to the client in each row (`associationId`) and to
monitoring with the row's prediction.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import orjson

from deckhand.serving.codecs import CSV_TYPES, RequestError

MAX_ID_LENGTH = 200


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _json_values(body: bytes, column: str) -> list[Any]:
    document = orjson.loads(body)
    if isinstance(document, dict) and isinstance(document.get("columns"), list):  # pandas' split form
        columns = document["columns"]
        at = columns.index(column) if column in columns else None
        return [row[at] if at is not None and isinstance(row, list) and at < len(row) else None
                for row in document.get("data") or []]  # fmt: skip
    records = document.get("data") if isinstance(document, dict) else document
    return [record.get(column) if isinstance(record, dict) else None for record in records or []]


def _csv_values(body: bytes, column: str) -> list[Any]:
    reader = csv.reader(io.StringIO(body.decode("utf-8-sig")))
    header = next(reader, [])
    at = header.index(column) if column in header else None
    return [(fields[at] or None) if at is not None and at < len(fields) else None for fields in reader if fields]


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def request_ids(body: bytes, content_type: str, settings: dict[str, Any], rows: int) -> list[str]:
    """One association id per row of the request: its `column` value, or a new UUID where
    it has none and `generate` is on."""
    column, generate = settings.get("column"), bool(settings.get("generate"))
    values: list[Any] = [None] * rows
    if column:
        try:
            found = _csv_values(body, column) if _media_type(content_type) in CSV_TYPES else _json_values(body, column)
        except (ValueError, TypeError, UnicodeDecodeError):
            found = []
        if len(found) == rows:
            values = found
    ids = []
    for index, value in enumerate(values):
        if value is None or value == "":
            if not generate:
                raise RequestError(
                    f"row {index}: no association id in column {column!r}; this deployment matches actuals "
                    "by it: send one per row (or have the deployment generate them: associationId.generate)",
                    422,
                )
            ids.append(uuid.uuid4().hex)
            continue
        text = _text(value)
        if len(text) > MAX_ID_LENGTH:
            raise RequestError(f"row {index}: association id of {len(text)} characters, over {MAX_ID_LENGTH}", 422)
        ids.append(text)
    return ids

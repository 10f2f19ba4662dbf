"""Actuals as they are sent: a JSON body or a CSV file, into checked rows and rejections.

    JSON  {"data": [{"associationId": "a1", "actualValue": 3.2, "timestamp": "2026-12-04T10:00:00Z"}, ...]}
          (a bare list of the same objects is accepted too)
    CSV   associationId,actualValue[,timestamp]   (a header row, then one row per actual)

A row that cannot be used is not dropped: it is rejected with its index (0-based, data rows),
its association id when it has one, the field at fault and why. In CSV, an actualValue that
reads as a number is a number; anything else is a class label.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from deckhand.server.services.accuracy.store import ActualRow

ASSOCIATION_ID = "associationId"
ACTUAL_VALUE = "actualValue"
TIMESTAMP = "timestamp"
MAX_ID_LENGTH = 200
MAX_LABEL_LENGTH = 200
REJECTED_SAMPLE = 100


class ActualsFormatError(ValueError):
    """The body as a whole is unusable (not JSON, no header); the message says how to fix it."""


@dataclass
class Rejected:
    row: int
    association_id: str | None
    field: str
    reason: str


@dataclass
class ParsedActuals:
    rows: list[ActualRow]
    rejected: list[Rejected]
    rejected_count: int

    def reject(self, item: Rejected) -> None:
        self.rejected_count += 1
        if len(self.rejected) < REJECTED_SAMPLE:
            self.rejected.append(item)


def _association_id(value: Any) -> tuple[str | None, str | None]:
    """(the id as text, None) or (None, why it is not one)."""
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        return None, "missing; every actual needs the association id its prediction was returned with"
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None, f"expected a non-empty string, got {type(value).__name__}"
    if len(value) > MAX_ID_LENGTH:
        return None, f"{len(value)} characters, over {MAX_ID_LENGTH}"
    return value, None


def _actual_value(value: Any) -> tuple[Any, str | None]:
    if value is None or value == "":
        return None, "missing; send the true value (a number for regression, the class label for classification)"
    if isinstance(value, bool):
        return str(value).lower(), None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None, f"{value} is not a finite number"
        return value, None
    if isinstance(value, str):
        if len(value) > MAX_LABEL_LENGTH:
            return None, f"a label of {len(value)} characters, over {MAX_LABEL_LENGTH}"
        return value, None
    return None, f"expected a number or a class label, got {type(value).__name__}"


def _timestamp(value: Any) -> tuple[datetime | None, str | None]:
    if value is None or value == "":
        return None, None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC), None
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)), None
    except (ValueError, OverflowError, OSError):
        pass
    return None, f"{value!r} is not an ISO 8601 time or epoch seconds"


def _add(parsed: ParsedActuals, index: int, item: Any) -> None:
    if not isinstance(item, dict):
        parsed.reject(Rejected(index, None, "", f"expected an object with {ASSOCIATION_ID} and {ACTUAL_VALUE}"))
        return
    association_id, problem = _association_id(item.get(ASSOCIATION_ID))
    if problem:
        parsed.reject(Rejected(index, None, ASSOCIATION_ID, problem))
        return
    value, problem = _actual_value(item.get(ACTUAL_VALUE))
    if problem:
        parsed.reject(Rejected(index, association_id, ACTUAL_VALUE, problem))
        return
    timestamp, problem = _timestamp(item.get(TIMESTAMP))
    if problem:
        parsed.reject(Rejected(index, association_id, TIMESTAMP, problem))
        return
    parsed.rows.append(ActualRow(str(association_id), value, timestamp))


def from_items(items: list[Any]) -> ParsedActuals:
    parsed = ParsedActuals([], [], 0)
    for index, item in enumerate(items):
        _add(parsed, index, item)
    return parsed


def from_json(body: bytes) -> ParsedActuals:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ActualsFormatError(f'body: not valid JSON ({exc}); send {{"data": [...]}} or text/csv') from None
    items = document.get("data") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ActualsFormatError(
            'body: expected {"data": [{"associationId": ..., "actualValue": ...}, ...]} or a list of such objects'
        )
    return from_items(items)


def _csv_value(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def from_csv(body: bytes) -> ParsedActuals:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ActualsFormatError(f"body: the CSV is not UTF-8 ({exc})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or ASSOCIATION_ID not in header or ACTUAL_VALUE not in header:
        raise ActualsFormatError(
            f"body: the CSV header {header!r} needs the columns {ASSOCIATION_ID} and {ACTUAL_VALUE} "
            f"({TIMESTAMP} is optional); rename your columns or use --id-column/--value-column of the CLI"
        )
    id_at, value_at = header.index(ASSOCIATION_ID), header.index(ACTUAL_VALUE)
    time_at = header.index(TIMESTAMP) if TIMESTAMP in header else None
    parsed = ParsedActuals([], [], 0)
    for index, fields in enumerate(reader):
        if not fields:
            continue
        if len(fields) != len(header):
            parsed.reject(Rejected(index, None, "", f"{len(fields)} fields, the header has {len(header)}"))
            continue
        item = {ASSOCIATION_ID: fields[id_at], ACTUAL_VALUE: _csv_value(fields[value_at]) if fields[value_at] else None}
        if time_at is not None:
            item[TIMESTAMP] = fields[time_at]
        _add(parsed, index, item)
    return parsed

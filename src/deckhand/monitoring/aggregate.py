"""Turn raw channel records into per-model, per-minute aggregates, and merge those.

The tracking agent aggregates before sending (one aggregate per source, deployment, model,
shadow flag and minute instead of one row per request); the control plane merges
aggregates into its stored buckets. Both sides use the same shapes:

    {"sourceId": "spool:0001-....jsonl", "deploymentId": "...", "modelId": "...",  # or null
     "shadow": false,                       # true: a challenger's answers, never returned
     "minute": 1763740020,                  # epoch seconds, a multiple of 60
     "requests": 10, "rows": 30, "userErrors": 0, "systemErrors": 1,
     "comparedRows": 0, "agreedRows": 0, "absDiffSum": 0.0,   # against the champion's answers
     "latency": {"p57": 3, ...},            # sketch counts (deckhand.monitoring.sketch)
     "features": {"age": {"num": {...}, "cat": {...}, "missing": 0}},
     "predictions": {"num": {...}, "cat": {...}, "missing": 0}}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deckhand.monitoring import sketch
from deckhand.monitoring.records import (
    ABS_DIFF_SUM,
    AGREED_ROWS,
    ASSOCIATION_IDS,
    COMPARED_ROWS,
    COUNT_KEYS,
    DEPLOYMENT_ID,
    MINUTE_START,
    MODEL_ID,
    PASSTHROUGH_KINDS,
    SHADOW,
    SOURCE_ID,
    Record,
    comparison,
    is_block,
    scored_from_data,
    shadow_flag,
)

MAX_CATEGORIES = 100
OTHER = "__other__"
MISSING = "missing"


_NUMBER_TYPES = (int, float)


def distribution(values: list[Any] | np.ndarray) -> dict[str, Any]:
    """A wire distribution of raw values: numbers sketched (vectorised), the rest counted.
    A numeric array is sketched whole, without a Python object per value."""
    out: dict[str, Any] = {}
    missing = 0
    if isinstance(values, np.ndarray):
        numbers: Any = values
    else:
        numbers = [v for v in values if type(v) in _NUMBER_TYPES]  # bool is not a number here
    if len(numbers) != len(values):
        categories: Counter[str] = Counter()
        for value in values:
            kind = type(value)
            if kind in _NUMBER_TYPES:
                continue
            if value is None:
                missing += 1
            elif kind is bool:
                categories["true" if value else "false"] += 1
            else:
                categories[str(value)] += 1
        if categories:
            out["cat"] = cap_categories(dict(categories))
    if len(numbers):
        counts: sketch.Counts = {}
        missing += sketch.add_values(counts, np.asarray(numbers, dtype=float))  # NaN counts as missing
        if counts:
            out["num"] = counts
    if missing:
        out[MISSING] = missing
    return out


def cap_categories(counts: dict[str, int], limit: int = MAX_CATEGORIES) -> dict[str, int]:
    if len(counts) <= limit:
        return counts
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[: limit - 1])
    kept[OTHER] = kept.get(OTHER, 0) + sum(n for _, n in ranked[limit - 1 :])
    return kept


@dataclass
class _Bucket:
    requests: int = 0
    rows: int = 0
    user_errors: int = 0
    system_errors: int = 0
    compared: int = 0
    agreed: int = 0
    abs_diff_sum: float = 0.0
    latencies: list[float] = field(default_factory=list)
    features: dict[str, list[Any]] = field(default_factory=dict)
    predictions: list[Any] = field(default_factory=list)
    class_names: list[str] | None = None
    # parts of aggregates that arrived already aggregated (a reporter's per-minute statistics)
    latency: sketch.Counts = field(default_factory=dict)
    merged_predictions: dict[str, Any] = field(default_factory=dict)
    merged_features: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_comparison(self, sums: tuple[int, int, float] | None) -> None:
        if sums is not None:
            self.compared += sums[0]
            self.agreed += sums[1]
            self.abs_diff_sum += sums[2]


def _prediction_value(value: Any, class_names: list[str] | None) -> Any:
    """A probability vector becomes its most likely class (by class_names when given)."""
    if isinstance(value, list | tuple):
        if not value:
            return None
        best = max(range(len(value)), key=lambda i: value[i] if isinstance(value[i], int | float) else -1)
        return class_names[best] if class_names and best < len(class_names) else str(best)
    if isinstance(value, dict):  # {"label": prob}
        return max(value, key=lambda k: value[k]) if value else None
    return value


# (source, deployment, model id or None, shadow, minute)
Key = tuple[str, str, str | None, bool, int]


def _model_id(record: Record) -> str | None:
    model_id = record.get(MODEL_ID)
    return str(model_id) if model_id else None


class Aggregator:
    """Collects records per (source, deployment, model, shadow, minute); `drain()` returns
    the aggregates.

    `add` only files values away (the hot loop of the tracking agent); classifying and
    sketching happen once per aggregate in `drain`, vectorised."""

    def __init__(self) -> None:
        self._buckets: dict[Key, _Bucket] = {}
        self.passthrough: list[Record] = []
        self.records = 0
        self.invalid = 0

    def add(self, source_id: str, record: Record) -> None:
        """File one channel item: a raw record (`ts`), a block of them (`kind: columns`), a
        reporter's aggregate (`minute`), or an item passed on as it is (`passthrough`:
        predictions by association id, actuals)."""
        if record.get("kind") in PASSTHROUGH_KINDS:
            self.passthrough.append({**record, SOURCE_ID: source_id})
            self.records += 1
            return
        if record.get(ASSOCIATION_IDS) and isinstance(record.get(DEPLOYMENT_ID), str):
            scored = scored_from_data(record)
            if scored is not None:
                self.passthrough.append({**scored, SOURCE_ID: source_id})
        if is_block(record):
            self._add_block(source_id, record)
            return
        if "minute" in record:
            self._add_aggregate(source_id, record)
            return
        try:
            deployment_id = record["deploymentId"]
            minute = int(record["ts"] // 60) * 60
            if type(deployment_id) is not str or not deployment_id:
                raise TypeError("deploymentId")
            requests = record.get("requests")
            if requests:  # checked before anything is filed: a bad record leaves no trace
                counts = (
                    _count(requests),
                    _count(record.get("rows") or 0),
                    _count(record.get("userErrors") or 0),
                    _count(record.get("systemErrors") or 0),
                )
            sums = comparison(record)
            key = (source_id, deployment_id, _model_id(record), shadow_flag(record), minute)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket()
            bucket.add_comparison(sums)
            if requests:
                bucket.requests += counts[0]
                bucket.rows += counts[1]
                bucket.user_errors += counts[2]
                bucket.system_errors += counts[3]
                latency = record.get("latencyMs")
                if latency is not None:
                    bucket.latencies.append(latency)
            features = record.get("features")
            if features:
                store = bucket.features
                for name, values in features.items():
                    column = store.get(name)
                    if column is None:
                        column = store[name] = []
                    if type(values) is list:
                        column.extend(values)
                    else:
                        column.append(values)
            predictions = record.get("predictions")
            if predictions:
                bucket.predictions.extend(predictions)
                if bucket.class_names is None and record.get("classNames"):
                    bucket.class_names = record["classNames"]
        except (KeyError, TypeError, ValueError, AttributeError):
            self.invalid += 1
            return
        self.records += 1

    def _add_block(self, source_id: str, block: Record) -> None:
        """A columnar block: checked whole (a bad block counts all its records invalid), its
        counts summed with numpy, its values filed for `drain` like a raw record's."""
        n = block.get("records")
        if type(n) is not int or n < 1:
            self.invalid += 1
            return
        try:
            deployment_id, model_id, shadow = block["deploymentId"], _model_id(block), shadow_flag(block)
            minute = block[MINUTE_START]
            sums = comparison(block)
            if type(deployment_id) is not str or not deployment_id or type(minute) is not int or minute % 60:
                raise TypeError("deploymentId/minuteStart")
            counts = [_counts(block.get(key) or []) for key in COUNT_KEYS]
            if len({len(c) for c in counts}) != 1 or len(counts[0]) > n:
                raise ValueError("requests, rows, userErrors and systemErrors must have one entry per record")
            latencies = block.get("latencyMs") or []
            features = block.get("features") or {}
            predictions = block.get("predictions") or []
            if type(latencies) is not list or type(features) is not dict or type(predictions) is not list:
                raise TypeError("latencyMs, features, predictions")
            if any(type(values) is not list for values in features.values()):
                raise TypeError("features: a list of values per feature")
        except (KeyError, TypeError, ValueError, AttributeError):
            self.invalid += n
            return
        key = (source_id, deployment_id, model_id, shadow, minute)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket()
        bucket.add_comparison(sums)
        requests, rows, user_errors, system_errors = (int(c.sum()) for c in counts)
        bucket.requests += requests
        bucket.rows += rows
        bucket.user_errors += user_errors
        bucket.system_errors += system_errors
        bucket.latencies.extend(latencies)
        store = bucket.features
        for name, values in features.items():
            column = store.get(name)
            if column is None:
                store[name] = list(values)
            else:
                column.extend(values)
        if predictions:
            bucket.predictions.extend(predictions)
            if bucket.class_names is None and block.get("classNames"):
                bucket.class_names = block["classNames"]
        self.records += n

    def _add_aggregate(self, source_id: str, record: Record) -> None:
        try:
            deployment_id = record["deploymentId"]
            minute = record["minute"]
            if type(deployment_id) is not str or not deployment_id or type(minute) is not int or minute % 60:
                raise TypeError("deploymentId/minute")
            sums = comparison(record)
            key = (source_id, deployment_id, _model_id(record), shadow_flag(record), minute)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket()
            bucket.add_comparison(sums)
            requests = _count(record.get("requests") or 0)
            bucket.requests += requests
            bucket.rows += _count(record.get("rows") or 0)
            bucket.user_errors += _count(record.get("userErrors") or 0)
            bucket.system_errors += _count(record.get("systemErrors") or 0)
            if record.get("latency"):
                sketch.merge(bucket.latency, record["latency"])
            if record.get("predictions"):
                merge_distribution(bucket.merged_predictions, record["predictions"])
            for name, data in (record.get("features") or {}).items():
                merge_distribution(bucket.merged_features.setdefault(name, {}), data)
        except (KeyError, TypeError, ValueError, AttributeError):
            self.invalid += 1
            return
        self.records += max(requests, 1)  # the requests it stands for

    def __len__(self) -> int:
        return len(self._buckets)

    def drain(self) -> list[dict[str, Any]]:
        out = []
        for (source_id, deployment_id, model_id, shadow, minute), b in self._buckets.items():
            latency: sketch.Counts = b.latency
            if b.latencies:
                sketch.add_values(latency, [v for v in b.latencies if type(v) in _NUMBER_TYPES])
            item: dict[str, Any] = {
                "sourceId": source_id,
                "deploymentId": deployment_id,
                "modelId": model_id,
                SHADOW: shadow,
                "minute": minute,
                "requests": b.requests,
                "rows": b.rows,
                "userErrors": b.user_errors,
                "systemErrors": b.system_errors,
                COMPARED_ROWS: b.compared,
                AGREED_ROWS: b.agreed,
                ABS_DIFF_SUM: b.abs_diff_sum,
                "latency": latency,
            }
            features = {name: distribution(values) for name, values in b.features.items()}
            for name, data in b.merged_features.items():
                merge_distribution(features.setdefault(name, {}), data)
            if features:
                item["features"] = features
            predictions = dict(b.merged_predictions)
            if b.predictions:
                values = b.predictions
                if any(type(v) in (list, tuple, dict) for v in values):
                    values = [_prediction_value(v, b.class_names) for v in values]
                merge_distribution(predictions, distribution(values))
            if predictions:
                item["predictions"] = predictions
            out.append(item)
        self._buckets = {}
        out.extend(self.passthrough)
        self.passthrough = []
        return out


def _counts(values: Any) -> np.ndarray:
    """A block's count column: non-negative integers only."""
    array = np.asarray(values)
    if type(values) is not list or (array.size and (array.dtype.kind not in "iu" or array.min() < 0)):
        raise TypeError("counts must be non-negative integers")
    return array


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TypeError("counts must be non-negative integers")
    return value


def merge_distribution(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Add one wire distribution ({"num", "cat", "missing"}) to another."""
    if other.get("num"):
        into["num"] = sketch.merge(dict(into.get("num") or {}), other["num"])
    if other.get("cat"):
        into["cat"] = cap_categories(sketch.merge(dict(into.get("cat") or {}), other["cat"]))
    if other.get(MISSING):
        into[MISSING] = int(into.get(MISSING) or 0) + int(other[MISSING])
    return into

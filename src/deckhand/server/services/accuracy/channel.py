"""Accuracy items of a monitoring batch: predictions by association id (`scored`) and
actuals, as the tracking agent passes them on (`deckhand.monitoring.records`).

Both are stored by key (`store`), so a batch sent again changes nothing: unlike the
aggregates, they need no source to be claimed first.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.orm import Session

from deckhand.monitoring.records import (
    ACTUALS_DATA,
    ACTUALS_KIND,
    ASSOCIATION_IDS,
    CLASS_NAMES,
    DEPLOYMENT_ID,
    MODEL_ID,
    PREDICTIONS,
    SCORED_KIND,
    TIMESTAMP,
)
from deckhand.server.errors import InvalidField
from deckhand.server.services.accuracy import actuals_input, store
from deckhand.server.services.accuracy.actuals_input import MAX_ID_LENGTH
from deckhand.server.services.accuracy.metrics import label_text

UNKNOWN_MODEL = "unknown"


def _scored_rows(where: str, item: dict[str, Any]) -> list[store.Scored]:
    ids, predictions, names = item.get(ASSOCIATION_IDS), item.get(PREDICTIONS), item.get(CLASS_NAMES)
    if not isinstance(ids, list) or not isinstance(predictions, list) or len(ids) != len(predictions):
        raise InvalidField(f"{where}.{ASSOCIATION_IDS}", f"a list as long as {PREDICTIONS} (one id per prediction)")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise InvalidField(f"{where}.{CLASS_NAMES}", "a list of the class labels, as strings")
    model_id = str(item.get(MODEL_ID) or UNKNOWN_MODEL)[:200]
    minute = int(item[TIMESTAMP] // 60) * 60 if _finite(item.get(TIMESTAMP)) else 0
    rows = []

    def row(association_id: str, prediction: float | None, label: str | None, probabilities: Any) -> store.Scored:
        return store.Scored(association_id, model_id, minute, prediction, label, probabilities, names)

    for index, (association_id, value) in enumerate(zip(ids, predictions, strict=True)):
        if not isinstance(association_id, str) or not association_id or len(association_id) > MAX_ID_LENGTH:
            raise InvalidField(f"{where}.{ASSOCIATION_IDS}[{index}]", f"a string of 1 to {MAX_ID_LENGTH} characters")
        if isinstance(value, list):
            if not names or len(value) != len(names) or not all(_finite(p) for p in value):
                raise InvalidField(
                    f"{where}.{PREDICTIONS}[{index}]", f"probabilities: one finite number per class of {CLASS_NAMES}"
                )
            best = max(range(len(value)), key=value.__getitem__)
            rows.append(row(association_id, None, names[best], [float(p) for p in value]))
        elif isinstance(value, str):
            rows.append(row(association_id, None, value[:200], None))
        elif _finite(value):
            if names:  # a classifier's label written as a number
                rows.append(row(association_id, None, label_text(value), None))
            else:
                rows.append(row(association_id, float(value), None, None))
        else:
            raise InvalidField(f"{where}.{PREDICTIONS}[{index}]", "a number, a label or a list of probabilities")
    return rows


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check(where: str, item: dict[str, Any]) -> None:
    """The checks that need no database: a bad item is a 422 naming it, as for aggregates."""
    if not isinstance(item.get(DEPLOYMENT_ID), str) or not item[DEPLOYMENT_ID]:
        raise InvalidField(f"{where}.{DEPLOYMENT_ID}", "the deployment's id")
    if item.get("kind") == SCORED_KIND:
        if not _finite(item.get(TIMESTAMP)):
            raise InvalidField(f"{where}.{TIMESTAMP}", "epoch seconds of the prediction")
        if item.get(MODEL_ID) is not None and not isinstance(item[MODEL_ID], str):
            raise InvalidField(f"{where}.{MODEL_ID}", "the model's id, a string")
        _scored_rows(where, item)
    elif not isinstance(item.get(ACTUALS_DATA), list):
        raise InvalidField(f"{where}.{ACTUALS_DATA}", "a list of {associationId, actualValue, timestamp?}")


def ingest(session: Session, items: list[tuple[str, dict[str, Any]]]) -> int:
    """Store the checked items (their deployments known and allowed); returns how many rows
    (predictions or actuals) were new or changed."""
    changed = 0
    store.hold(session, (item[DEPLOYMENT_ID] for _, item in items))
    scored: dict[str, list[store.Scored]] = {}  # per deployment: one statement for all its items
    for where, item in items:
        if item["kind"] == SCORED_KIND:
            scored.setdefault(item[DEPLOYMENT_ID], []).extend(_scored_rows(where, item))
    for deployment_id, rows in sorted(scored.items()):
        changed += store.record_scored(session, deployment_id, rows)
    for _, item in items:
        if item["kind"] == ACTUALS_KIND:
            parsed = actuals_input.from_items(item[ACTUALS_DATA])
            outcome = store.upsert_actuals(session, item[DEPLOYMENT_ID], parsed.rows)
            changed += outcome.inserted + outcome.updated
    return changed

"""The accuracy tables: keep predictions by association id, upsert actuals, and add what
each newly matched pair contributes to its model's bucket of the minute it was predicted.

Both sides may come first and both may come again. A prediction already kept (same
deployment, association id, model) is ignored; an actual sent again with the same value
changes nothing, and with a new value takes back what the old one added before adding its
own. So a bucket always holds exactly one contribution per (prediction, latest actual),
however often and in whatever order things arrive; nothing rescans rows to get there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text, tuple_, update
from sqlalchemy.orm import Session

from deckhand.server.db.models import AccuracyBucket, Actual, Deployment, ScoredRow, utcnow
from deckhand.server.services.accuracy.metrics import Sums, combine, contribution, kind_of
from deckhand.server.services.monitoring.storage import insert_of

_CHUNK = 500  # rows per statement: under every database's bound-parameter limit
PENDING_SAMPLE = 20


@dataclass(frozen=True)
class Scored:
    """One row's prediction as the prediction server reported it: by which model, in which
    minute, and its answer (a value, or a label and the probabilities in `class_names` order)."""

    association_id: str
    model_id: str
    minute: int
    prediction: float | None
    label: str | None
    probabilities: list[float] | None
    class_names: list[str] | None = None


@dataclass(frozen=True)
class ActualRow:
    association_id: str
    value: Any
    timestamp: datetime | None = None


@dataclass
class ActualsOutcome:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    matched: int = 0  # ids with at least one prediction kept
    pending: int = 0  # ids without one (yet): matched when it arrives
    pending_ids: list[str] = field(default_factory=list)


def _chunks(items: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class _Deltas:
    """Sums to add per (model, minute) of one deployment, written in one go."""

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        self.by_key: dict[tuple[str, int], tuple[str, Sums]] = {}

    def add(self, row: Any, actual: Any, sign: int = 1) -> bool:
        sums = contribution(row.prediction, row.label, row.probabilities, row.class_names, actual)
        if sums is None:
            return False
        key = (row.model_id, row.minute)
        kind = kind_of(row.prediction, row.probabilities)
        _, into = self.by_key.setdefault(key, (kind, {}))
        combine(into, sums, sign)
        return True

    def write(self, session: Session) -> None:
        """Add to the stored buckets (read locked on PostgreSQL, in key order), insert the new."""
        if not self.by_key:
            return
        stored: dict[tuple[str, int], Any] = {}
        keys = sorted(self.by_key)
        for chunk in _chunks(keys):
            for old in session.scalars(
                select(AccuracyBucket)
                .where(
                    AccuracyBucket.deployment_id == self.deployment_id,
                    tuple_(AccuracyBucket.model_id, AccuracyBucket.minute).in_(chunk),
                )
                .order_by(AccuracyBucket.model_id, AccuracyBucket.minute)
                .with_for_update()
            ):
                stored[(old.model_id, old.minute)] = old
        inserts, updates = [], []
        for key in keys:
            kind, sums = self.by_key[key]
            old = stored.get(key)
            if old is None:
                inserts.append(
                    {
                        "deployment_id": self.deployment_id,
                        "model_id": key[0],
                        "minute": key[1],
                        "kind": kind,
                        "sums": sums,
                    }
                )
            else:
                merged = combine(dict(old.sums or {}), sums)
                updates.append(
                    {"deployment_id": self.deployment_id, "model_id": key[0], "minute": key[1], "sums": merged}
                )
        if inserts:
            session.execute(insert(AccuracyBucket), inserts)
        if updates:
            session.execute(update(AccuracyBucket), updates)


def hold(session: Session, deployment_ids: Iterable[str]) -> None:
    """Lock the deployments' rows (sorted: one lock order) until the transaction ends.

    Matching reads the other side's rows, so under READ COMMITTED a prediction and its actual
    stored at once by two transactions would each miss the other and the pair would never
    count. Holding the deployment's row makes its accuracy writes take turns (PostgreSQL;
    SQLite writers queue anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        # the IN (...) lookups by id: a generic plan for a prepared statement, made before the
        # planner has statistics of these tables, scans a deployment's rows for each (bench/accuracy.py)
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    for deployment_id in sorted(set(deployment_ids)):
        session.execute(select(Deployment.id).where(Deployment.id == deployment_id).with_for_update())


def record_scored(session: Session, deployment_id: str, rows: list[Scored]) -> int:
    """Keep the rows' predictions (an id a model already has is ignored) and count the ones
    whose actual is already there. Returns how many rows were new.

    One statement for all rows (executemany: compiled once, sent in batches with RETURNING),
    whatever the models and minutes they came in: a prediction server reports many small
    requests."""
    hold(session, [deployment_id])
    latest = list({(r.association_id, r.model_id): r for r in rows}.values())
    if not latest:
        return 0
    statement = (
        insert_of(session)(ScoredRow)
        .on_conflict_do_nothing(index_elements=["deployment_id", "association_id", "model_id"])
        .returning(ScoredRow.association_id, ScoredRow.model_id)
    )
    values = [
        {
            "deployment_id": deployment_id,
            "association_id": r.association_id,
            "model_id": r.model_id,
            "minute": r.minute,
            "prediction": r.prediction,
            "label": r.label,
            "probabilities": r.probabilities,
            "class_names": r.class_names if r.probabilities or r.label is not None else None,
        }
        for r in latest
    ]
    fresh = {(i, m) for i, m in session.execute(statement, values)}
    if not fresh:
        return 0
    by_id: dict[str, list[Scored]] = {}
    for r in latest:
        if (r.association_id, r.model_id) in fresh:
            by_id.setdefault(r.association_id, []).append(r)
    deltas = _Deltas(deployment_id)
    for chunk in _chunks(sorted(by_id)):
        for actual_id, number, label in session.execute(
            select(Actual.association_id, Actual.number, Actual.label).where(
                Actual.deployment_id == deployment_id, Actual.association_id.in_(chunk)
            )
        ):
            for r in by_id[actual_id]:
                deltas.add(r, _value(number, label))
    deltas.write(session)
    return len(fresh)


def _columns(value: Any) -> dict[str, Any]:
    """An actual value into its column: a number, or a label."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"number": float(value), "label": None}
    return {"number": None, "label": str(value)}


def _value(number: float | None, label: str | None) -> Any:
    return label if number is None else number


def upsert_actuals(session: Session, deployment_id: str, rows: list[ActualRow]) -> ActualsOutcome:
    """Store the actuals (the last of an id sent twice in `rows` wins) and match them."""
    hold(session, [deployment_id])
    outcome = ActualsOutcome()
    latest = list({r.association_id: r for r in rows}.values())
    deltas = _Deltas(deployment_id)
    now = utcnow()
    for chunk in _chunks(latest):
        ids = [r.association_id for r in chunk]
        stored = {
            association_id: _value(number, label)
            for association_id, number, label in session.execute(
                select(Actual.association_id, Actual.number, Actual.label)
                .where(Actual.deployment_id == deployment_id, Actual.association_id.in_(ids))
                .order_by(Actual.association_id)
                .with_for_update()
            )
        }
        inserts, updates, changed = [], [], {}
        for r in chunk:
            values = {"deployment_id": deployment_id, "association_id": r.association_id, **_columns(r.value)}
            values.update(timestamp=r.timestamp, received_at=now)
            if r.association_id not in stored:
                inserts.append(values)
            elif stored[r.association_id] != r.value:
                updates.append(values)
                changed[r.association_id] = stored[r.association_id]
            else:
                outcome.unchanged += 1
        if inserts:
            session.execute(insert(Actual), inserts)
        if updates:
            session.execute(update(Actual), updates)
        outcome.inserted += len(inserts)
        outcome.updated += len(updates)
        moved = [v["association_id"] for v in inserts + updates]
        if not moved:
            continue
        new_value = {r.association_id: r.value for r in chunk}
        matched: set[str] = set()
        for row in session.execute(
            select(ScoredRow).where(ScoredRow.deployment_id == deployment_id, ScoredRow.association_id.in_(moved))
        ).scalars():
            matched.add(row.association_id)
            if row.association_id in changed:
                deltas.add(row, changed[row.association_id], sign=-1)
            deltas.add(row, new_value[row.association_id])
        outcome.matched += len(matched)
        unmatched = [i for i in moved if i not in matched]
        outcome.pending += len(unmatched)
        outcome.pending_ids.extend(unmatched[: PENDING_SAMPLE - len(outcome.pending_ids)])
    deltas.write(session)
    return outcome

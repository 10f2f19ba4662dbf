"""Monitoring ingest: check a batch's records, count each channel source once, merge.

Each aggregate (see `deckhand.monitoring.aggregate`) names the channel source it came
from and is merged into its deployment's buckets (unless shadow) and its model's; a
source already recorded is skipped, so resending a batch after a crash or a timeout never
counts anything twice, however the sender regrouped its sources. A source's aggregates
(one per deployment, model, shadow flag and minute) travel in one batch, as the tracking
agent sends them: once a source is claimed, an aggregate of it arriving later is skipped.
Raw records are aggregated here, under the batch id as their source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.records import DEPLOYMENT_ID, MINUTE, PASSTHROUGH_KINDS, TIMESTAMP
from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment
from deckhand.server.errors import Forbidden, InvalidField
from deckhand.server.schemas.monitoring import MonitoringAggregate, MonitoringRawRecord, first_error
from deckhand.server.services.accuracy import channel as accuracy_channel
from deckhand.server.services.monitoring import storage
from deckhand.server.services.monitoring.storage import SourceRetention

log = logging.getLogger("deckhand.server.monitoring")

RAW_RECORD_HELP = (
    f"a raw record needs {DEPLOYMENT_ID} (string) and {TIMESTAMP} (epoch seconds); "
    f"an aggregate needs {DEPLOYMENT_ID} and {MINUTE}"
)


@dataclass
class IngestResult:
    accepted: int
    duplicate: bool
    skipped_sources: int
    unknown_deployments: list[str]


def parse_records(
    batch_id: str, records: list[dict[str, Any]]
) -> tuple[list[MonitoringAggregate], list[tuple[str, dict[str, Any]]]]:
    """The batch's aggregates, checked, its raw records aggregated under `batch_id`; and its
    accuracy items (`kind` scored or actuals, with where they were), checked.

    An item with `minute` is an aggregate, any other a raw record. The first bad item is a
    422 naming it and its key (`records[3].minute: ...`). A raw record that passes this
    check but not the aggregator's is counted invalid and dropped, as on the tracking agent."""
    aggregates: list[MonitoringAggregate] = []
    accuracy_items: list[tuple[str, dict[str, Any]]] = []
    raw = Aggregator()
    for index, item in enumerate(records):
        where = f"records[{index}]"
        if item.get("kind") in PASSTHROUGH_KINDS:
            accuracy_channel.check(where, item)
            accuracy_items.append((where, item))
        elif MINUTE in item:
            try:
                aggregates.append(MonitoringAggregate.model_validate(item))
            except ValidationError as exc:
                key, message = first_error(exc)
                raise InvalidField(f"{where}.{key}", message) from None
        else:
            try:
                MonitoringRawRecord.model_validate(item)
            except ValidationError as exc:
                key, message = first_error(exc)
                if key in (DEPLOYMENT_ID, TIMESTAMP):
                    raise InvalidField(where, RAW_RECORD_HELP) from None
                raise InvalidField(f"{where}.{key}", message) from None
            raw.add(batch_id, item)
    for item in raw.drain():
        if item.get("kind") in PASSTHROUGH_KINDS:  # a raw data record's association ids
            accuracy_items.append((f"records (association ids of {item[DEPLOYMENT_ID]})", item))
        else:
            aggregates.append(MonitoringAggregate.model_validate(item))
    for aggregate in aggregates:
        aggregate.source_id = aggregate.source_id or batch_id
    return aggregates, accuracy_items


def _check_deployments(session: Session, principal: Principal, ids: set[str]) -> set[str]:
    """Known ids (agents: only in their environments); returns the unknown ones."""
    rows = session.execute(select(Deployment.id, Deployment.environment_id).where(Deployment.id.in_(sorted(ids)))).all()
    known = {row.id for row in rows}
    for row in rows:
        if not principal.can_see_environment(row.environment_id):
            raise Forbidden(
                f"records: agent token {principal.name!r} may not report for deployment {row.id} "
                f"(environment {row.environment_id}); give the token that environment in environmentIds"
            )
    return ids - known


def ingest(
    session: Session,
    principal: Principal,
    batch_id: str,
    records: list[dict[str, Any]],
    retention: SourceRetention,
) -> IngestResult:
    """Merge a batch in `session`; sources already counted are skipped, unknown deployments
    dropped (and named); `retention` prunes old sources now and then."""
    aggregates, accuracy_items = parse_records(batch_id, records)
    accepted_accuracy, unknown_accuracy = 0, set()
    if accuracy_items:  # idempotent by key: stored whether or not their source was seen
        ids = {item[DEPLOYMENT_ID] for _, item in accuracy_items}
        unknown_accuracy = _check_deployments(session, principal, ids)
        usable_items = [(w, item) for w, item in accuracy_items if item[DEPLOYMENT_ID] not in unknown_accuracy]
        accuracy_channel.ingest(session, usable_items)
        accepted_accuracy = len(usable_items)
        if not aggregates:
            return IngestResult(accepted_accuracy, False, 0, sorted(unknown_accuracy))
    sources = sorted({str(item.source_id) for item in aggregates} or {batch_id})  # sorted: one lock order
    claimed = storage.claim_sources(session, sources, batch_id)
    fresh = [item for item in aggregates if item.source_id in claimed]
    skipped = len(sources) - len(claimed)
    if not claimed:
        return IngestResult(accepted_accuracy, not accepted_accuracy, skipped, sorted(unknown_accuracy))
    unknown = _check_deployments(session, principal, {item.deployment_id for item in fresh}) if fresh else set()
    unknown |= unknown_accuracy
    if unknown:
        log.warning("event=monitoring_unknown_deployments batch=%s deployments=%s", batch_id, sorted(unknown))
    usable = [item for item in fresh if item.deployment_id not in unknown]
    # a shadow (challenger) answer was not returned: it counts for its model, not the deployment
    returned = [item for item in usable if not item.shadow]
    storage.merge_service(session, returned)
    storage.merge_distributions(session, returned)
    storage.merge_models(session, usable)
    storage.merge_model_predictions(session, usable)
    retention.maybe_prune(session)
    return IngestResult(len(usable) + accepted_accuracy, False, skipped, sorted(unknown))

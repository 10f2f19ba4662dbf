"""Monitoring per model of a deployment: the champion, a canary, challengers.

Read from `monitoring_model_buckets` and `monitoring_model_predictions` (merged by
`storage.merge_models` / `merge_model_predictions`). The rollout controller's gates and
`GET /deployments/{id}/monitoring/models` read these two functions:

- `model_health`: each model's counts, error rate, latency percentiles and agreement with
  the champion over a window;
- `prediction_psi`: the PSI of one model's predictions against another's over the minutes
  both have predictions in, computed by `deckhand.monitoring.drift` like feature drift.

`compare_models` puts both together for the API. Windows are [start, end) in epoch
seconds (or datetimes), start aligned down to its minute, as `queries.window` makes them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from deckhand.monitoring.aggregate import merge_distribution
from deckhand.monitoring.drift import feature_drift
from deckhand.server.db.models import Deployment, MonitoringModelBucket, MonitoringModelPredictions
from deckhand.server.schemas.monitoring import ModelMonitoring, ModelsMonitoring
from deckhand.server.services.monitoring.queries import _percentile, _Tally, _utc
from deckhand.server.services.monitoring.storage import PREDICTION_NAME

# Fewer predictions than this on either side and the PSI is noise (each of the ten decile
# bins would expect under 10 values): prediction_psi answers None.
MIN_PSI_PREDICTIONS = 100


@dataclass(frozen=True)
class ModelHealth:
    """One model's service health in a window. `shadow`: all its statistics were of answers
    not returned (a challenger). `error_rate` is (user + system errors) / requests, None
    without requests; `agreement` agreed / compared and `mean_abs_diff` the mean absolute
    difference from the champion's answer (0 for labels), both None when nothing was
    compared."""

    model_id: str
    shadow: bool
    requests: int
    rows: int
    user_errors: int
    system_errors: int
    error_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    compared: int
    agreed: int
    agreement: float | None
    mean_abs_diff: float | None


class _ModelTally(_Tally):
    """queries' counts and latency sketch, plus the comparison with the champion."""

    def __init__(self) -> None:
        super().__init__()
        self.shadow = True
        self.compared = self.agreed = 0
        self.abs_diff_sum = 0.0

    def add(self, row: MonitoringModelBucket) -> None:  # type: ignore[override]
        super().add(row)  # type: ignore[arg-type]  # the same count and latency columns
        self.shadow = self.shadow and row.shadow
        self.compared += row.compared
        self.agreed += row.agreed
        self.abs_diff_sum += row.abs_diff_sum

    def health(self, model_id: str) -> ModelHealth:
        errors = self.user_errors + self.system_errors
        return ModelHealth(
            model_id=model_id,
            shadow=self.shadow,
            requests=self.requests,
            rows=self.rows,
            user_errors=self.user_errors,
            system_errors=self.system_errors,
            error_rate=errors / self.requests if self.requests else None,
            p50_ms=_percentile(self.latency, 0.50),
            p99_ms=_percentile(self.latency, 0.99),
            compared=self.compared,
            agreed=self.agreed,
            agreement=self.agreed / self.compared if self.compared else None,
            mean_abs_diff=self.abs_diff_sum / self.compared if self.compared else None,
        )


def _epoch(value: int | datetime) -> int:
    """Epoch seconds of a window bound given as seconds or as a datetime (naive: UTC)."""
    if isinstance(value, datetime):
        return int(_utc(value).timestamp())
    return int(value)


def _window(start: int | datetime, end: int | datetime) -> tuple[int, int]:
    return _epoch(start) // 60 * 60, _epoch(end)


def model_health(
    session: Session, deployment_id: str, start: int | datetime, end: int | datetime
) -> dict[str, ModelHealth]:
    """Model id -> its health over the minutes in [start, end); models without a bucket
    in the window are absent."""
    first, last = _window(start, end)
    tallies: dict[str, _ModelTally] = defaultdict(_ModelTally)
    for row in session.scalars(
        select(MonitoringModelBucket).where(
            MonitoringModelBucket.deployment_id == deployment_id,
            MonitoringModelBucket.minute >= first,
            MonitoringModelBucket.minute < last,
        )
    ):
        tallies[row.model_id].add(row)
    return {model_id: tally.health(model_id) for model_id, tally in sorted(tallies.items())}


def _predictions_by_minute(
    session: Session, deployment_id: str, model_id: str, first: int, last: int
) -> dict[int, dict[str, Any]]:
    rows = session.execute(
        select(MonitoringModelPredictions.minute, MonitoringModelPredictions.data).where(
            MonitoringModelPredictions.deployment_id == deployment_id,
            MonitoringModelPredictions.model_id == model_id,
            MonitoringModelPredictions.minute >= first,
            MonitoringModelPredictions.minute < last,
        )
    )
    return {minute: data or {} for minute, data in rows}


def _merged(by_minute: dict[int, dict[str, Any]], minutes: set[int]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for minute in sorted(minutes):
        merge_distribution(merged, by_minute[minute])
    return merged


def _count(distribution: dict[str, Any]) -> int:
    """Predictions with a value (missing ones do not count)."""
    return sum((distribution.get("num") or {}).values()) + sum((distribution.get("cat") or {}).values())


def prediction_psi(
    session: Session,
    deployment_id: str,
    model_id: str,
    reference_model_id: str,
    start: int | datetime,
    end: int | datetime,
    *,
    min_predictions: int = MIN_PSI_PREDICTIONS,
) -> float | None:
    """PSI of `model_id`'s predictions against `reference_model_id`'s (the baseline: its
    deciles, or its classes) over the minutes of [start, end) in which both have predictions.
    None when either side has fewer than `min_predictions` predictions there."""
    first, last = _window(start, end)
    current = _predictions_by_minute(session, deployment_id, model_id, first, last)
    reference = _predictions_by_minute(session, deployment_id, reference_model_id, first, last)
    minutes = current.keys() & reference.keys()
    current_data, reference_data = _merged(current, minutes), _merged(reference, minutes)
    if min(_count(current_data), _count(reference_data)) < max(min_predictions, 1):
        return None
    drift = feature_drift(PREDICTION_NAME, reference_data, current_data)
    return None if drift is None else drift.psi


def compare_models(session: Session, deployment: Deployment, start: int, end: int) -> ModelsMonitoring:
    """Every model's health in the window, and each non-champion's PSI against the champion
    (the deployment's current model)."""
    champion = deployment.model_package_id
    health = model_health(session, deployment.id, start, end)
    models = [
        ModelMonitoring(
            **asdict(found),
            champion=model_id == champion,
            psi_vs_champion=None
            if model_id == champion
            else prediction_psi(session, deployment.id, model_id, champion, start, end),
        )
        for model_id, found in sorted(health.items(), key=lambda item: (item[0] != champion, item[0]))
    ]
    return ModelsMonitoring(
        deployment_id=deployment.id,
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
        champion_model_id=champion,
        psi_min_predictions=MIN_PSI_PREDICTIONS,
        models=models,
    )

"""Monitoring: the ingest body, the records in it, and the answers of the queries.

The records of a batch stay plain JSON objects in the body (a batch may hold 200,000
raw records; the service checks each, see `deckhand.server.services.monitoring.ingest`)
and are validated with `MonitoringAggregate` or `MonitoringRawRecord`, whose keys are the
ones `deckhand.monitoring.records` defines.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from deckhand.monitoring.records import (
    ABS_DIFF_SUM,
    AGREED_ROWS,
    COMPARED_ROWS,
    DEPLOYMENT_ID,
    FEATURES,
    LATENCY,
    MINUTE,
    MODEL_ID,
    PREDICTIONS,
    REQUESTS,
    ROWS,
    SHADOW,
    SOURCE_ID,
    SYSTEM_ERRORS,
    TIMESTAMP,
    USER_ERRORS,
)
from deckhand.server.schemas.common import ApiModel, RequestModel

MAX_BATCH_RECORDS = 200_000


class MonitoringBatch(RequestModel):
    batch_id: str = Field(
        min_length=1,
        max_length=200,
        description="Idempotency key: resending a batch (or any source in it) is a no-op.",
    )
    records: list[dict[str, Any]] = Field(
        max_length=MAX_BATCH_RECORDS,
        description="Aggregates (deploymentId, minute, ...) or raw records (deploymentId, ts, ...).",
    )


class MonitoringBatchResult(ApiModel):
    accepted: int
    duplicate: bool
    skipped_sources: int = 0
    unknown_deployments: list[str] = Field(default_factory=list)


# ----- the records of a batch ------------------------------------------------------------------

REQUIRED = "required:"
# what a key holds, for error messages
WHAT = {
    DEPLOYMENT_ID: "the deployment id the statistics belong to",
    MINUTE: "epoch seconds at a whole minute",
    TIMESTAMP: "epoch seconds",
}


def _deployment_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{REQUIRED} {WHAT[DEPLOYMENT_ID]}")
    return value


def _minute(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value % 60:
        raise ValueError(f"expected {WHAT[MINUTE]}, found {value!r}")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a non-negative integer, found {value!r}")
    return value


def _flag(value: Any) -> bool:
    """true or false; absent or null reads as false."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, found {value!r}")
    return value


def _amount(value: Any) -> float:
    if (
        not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf  # also refuses NaN
    ):
        raise ValueError(f"expected a non-negative finite number, found {value!r}")
    return float(value)


def _object(value: Any) -> dict[str, Any]:
    """An object, or nothing (null reads as an empty object)."""
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"expected an object, found {type(value).__name__}")
    return value or {}


def _optional_text(value: Any) -> str | None:
    """An id that may be absent: empty means absent, anything else is read as text."""
    return str(value) if value else None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, found {type(value).__name__}")
    return value


def _epoch_seconds(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"expected {WHAT[TIMESTAMP]} (a number), found {value!r}")
    return value


Count = Annotated[int, PlainValidator(_count)]
Flag = Annotated[bool, PlainValidator(_flag)]
Amount = Annotated[float, PlainValidator(_amount)]
JsonObject = Annotated[dict[str, Any], PlainValidator(_object)]
OptionalText = Annotated[str | None, PlainValidator(_optional_text)]


class MonitoringAggregate(BaseModel):
    """One deployment's (one model's) statistics for one minute from one channel source
    (the shape `deckhand.monitoring.aggregate` produces and the tracking agent posts). Keys
    are the ones `deckhand.monitoring.records` defines; unknown keys are ignored. `shadow`:
    a challenger's answers, never returned, counted for its model only."""

    model_config = ConfigDict(extra="ignore")

    # checked in this order: the first error is the one reported (`first_error`)
    deployment_id: Annotated[str, PlainValidator(_deployment_id)] = Field(validation_alias=DEPLOYMENT_ID)
    minute: Annotated[int, PlainValidator(_minute)] = Field(validation_alias=MINUTE)
    requests: Count = Field(default=0, validation_alias=REQUESTS)
    rows: Count = Field(default=0, validation_alias=ROWS)
    user_errors: Count = Field(default=0, validation_alias=USER_ERRORS)
    system_errors: Count = Field(default=0, validation_alias=SYSTEM_ERRORS)
    latency: JsonObject = Field(default_factory=dict, validation_alias=LATENCY)
    features: JsonObject = Field(default_factory=dict, validation_alias=FEATURES)
    predictions: JsonObject = Field(default_factory=dict, validation_alias=PREDICTIONS)
    source_id: OptionalText = Field(default=None, validation_alias=SOURCE_ID)
    model_id: OptionalText = Field(default=None, validation_alias=MODEL_ID)
    shadow: Flag = Field(default=False, validation_alias=SHADOW)
    compared_rows: Count = Field(default=0, validation_alias=COMPARED_ROWS)
    agreed_rows: Count = Field(default=0, validation_alias=AGREED_ROWS)
    abs_diff_sum: Amount = Field(default=0.0, validation_alias=ABS_DIFF_SUM)


class MonitoringRawRecord(BaseModel):
    """The keys a raw record (one scoring call, `deckhand.monitoring.records`) needs before
    the control plane aggregates it, and its shadow flag and comparison sums; the rest is
    judged by the aggregator."""

    model_config = ConfigDict(extra="ignore")

    deployment_id: Annotated[str, PlainValidator(_text)] = Field(validation_alias=DEPLOYMENT_ID)
    timestamp: Annotated[float, PlainValidator(_epoch_seconds)] = Field(validation_alias=TIMESTAMP)
    shadow: Flag = Field(default=False, validation_alias=SHADOW)
    compared_rows: Count = Field(default=0, validation_alias=COMPARED_ROWS)
    agreed_rows: Count = Field(default=0, validation_alias=AGREED_ROWS)
    abs_diff_sum: Amount = Field(default=0.0, validation_alias=ABS_DIFF_SUM)


def first_error(exc: ValidationError) -> tuple[str, str]:
    """The record key and the message of the first problem in a record's ValidationError."""
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"])
    if err["type"] == "missing":
        return key, f"{REQUIRED} {WHAT.get(key, 'a value')}"
    return key, str(err["msg"]).removeprefix("Value error, ")


# ----- the answers of the queries --------------------------------------------------------------


class HealthCounts(ApiModel):
    requests: int
    rows: int
    user_errors: int
    system_errors: int
    latency_p50_ms: float | None = Field(description="Median latency (ms); null without requests.")
    latency_p99_ms: float | None = Field(description="99th percentile latency (ms); null without requests.")


class HealthBucket(HealthCounts):
    start: datetime


class ServiceHealth(ApiModel):
    """Every bucket of the window is present (zeros and null latencies when idle)."""

    deployment_id: str
    start: datetime
    end: datetime
    bucket_seconds: int
    totals: HealthCounts
    buckets: list[HealthBucket]


class PredictionClass(ApiModel):
    label: str
    count: int
    share: float


class PredictionBin(ApiModel):
    start: float
    end: float
    count: int
    share: float


class PredictionDistribution(ApiModel):
    """`classes` for classification (the package's class labels first), else `bins` (10
    equal-width bins between the smallest and the largest prediction)."""

    deployment_id: str
    start: datetime
    end: datetime
    target_type: str
    missing: int = Field(description="Predictions without a value.")
    count: int
    classes: list[PredictionClass] | None = Field(default=None, description="Classification only.")
    bins: list[PredictionBin] | None = Field(default=None, description="Regression (and other numbers) only.")


class FeatureDriftOut(ApiModel):
    name: str
    kind: Literal["numeric", "categorical"]
    psi: float
    status: Literal["ok", "warning", "drift"]
    bins: list[str] = Field(description="Bin labels: `low..high` (numeric) or categories and `__other__`.")
    baseline_share: list[float]
    current_share: list[float]
    baseline_count: int
    current_count: int


class DriftThresholds(ApiModel):
    warning: float
    drift: float


class FeatureDriftReport(ApiModel):
    """PSI per feature against the package's training summary, else the first hour of data
    (`baselineStart`/`baselineEnd` say which hour)."""

    deployment_id: str
    start: datetime
    end: datetime
    baseline: Literal["package", "first-window"]
    baseline_start: datetime | None = Field(default=None, description="First-window baseline only.")
    baseline_end: datetime | None = Field(default=None, description="First-window baseline only.")
    features: list[FeatureDriftOut]
    features_without_data: list[str] = Field(description="Baseline features without values in the window.")
    thresholds: DriftThresholds


class ModelMonitoring(ApiModel):
    """One model of the deployment in the window (`deckhand.server.services.monitoring.models`)."""

    model_id: str
    champion: bool = Field(description="The deployment's current model.")
    shadow: bool = Field(description="All its answers in the window were recorded, not returned (a challenger).")
    requests: int
    rows: int
    user_errors: int
    system_errors: int
    error_rate: float | None = Field(description="(userErrors + systemErrors) / requests; null without requests.")
    p50_ms: float | None = Field(description="Median latency (ms); null without requests.")
    p99_ms: float | None = Field(description="99th percentile latency (ms); null without requests.")
    compared: int = Field(description="Rows whose answer was compared with the champion's.")
    agreed: int = Field(description="Compared rows that agreed (equal labels; values within 1 %).")
    agreement: float | None = Field(description="agreed / compared; null when nothing was compared.")
    mean_abs_diff: float | None = Field(
        description="Mean |answer - champion's| over compared rows (0 for labels); null when nothing was compared."
    )
    psi_vs_champion: float | None = Field(
        description="PSI of its predictions against the champion's over the minutes both have predictions in; "
        "null for the champion, or with too few predictions on either side (see psiMinPredictions)."
    )


class ModelsMonitoring(ApiModel):
    """Every model that reported in the window, the champion first."""

    deployment_id: str
    start: datetime
    end: datetime
    champion_model_id: str | None
    psi_min_predictions: int = Field(description="Predictions each side needs for a PSI.")
    models: list[ModelMonitoring]

"""Accuracy: a deployment's association-id settings, the actuals upload's answer, and
accuracy over time (docs/accuracy.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictBool, model_validator

from deckhand.server.schemas.common import ApiModel, RequestModel

ColumnName = Annotated[str, Field(min_length=1, max_length=200)]


class AssociationIdSettings(RequestModel):
    """How a deployment's predictions get the ids that actuals are matched by."""

    column: ColumnName | None = Field(None, description="The request column that holds each row's association id.")
    generate: StrictBool = Field(
        False, description="Give a row without an id one (a UUID) and return it with the prediction."
    )

    @model_validator(mode="after")
    def _something(self) -> AssociationIdSettings:
        if self.column is None and not self.generate:
            raise ValueError("set column (the request column with each row's id), generate: true, or both")
        return self


class AssociationIdOut(ApiModel):
    column: str | None
    generate: bool


class RejectedActual(ApiModel):
    row: int = Field(description="0-based index among the data rows sent.")
    association_id: str | None
    field: str
    reason: str


class ActualsResult(ApiModel):
    received: int = Field(description="Rows in the body.")
    accepted: int = Field(description="Rows stored: new, updated or unchanged.")
    inserted: int
    updated: int = Field(description="Ids sent before with another value: the new one counts.")
    unchanged: int
    matched: int = Field(description="Accepted ids with a prediction: counted in accuracy now.")
    pending: int = Field(description="Accepted ids without a prediction yet (unknown ids): counted when one arrives.")
    pending_ids: list[str] = Field(description="The first of them.")
    rejected_count: int
    rejected: list[RejectedActual] = Field(description="The first 100 rejected rows, each with its reason.")


class AccuracyBucketOut(ApiModel):
    start: datetime
    matched: int
    metrics: dict[str, float | None]


class ModelAccuracy(ApiModel):
    model_id: str
    champion: bool = Field(description="Whether it is the deployment's model now.")
    kind: str = Field(description="regression, binary or multiclass")
    matched: int = Field(description="Predictions in the window with an actual.")
    metrics: dict[str, float | None]
    buckets: list[AccuracyBucketOut]


class AccuracyReport(ApiModel):
    deployment_id: str
    start: datetime
    end: datetime
    bucket_seconds: int
    models: list[ModelAccuracy]

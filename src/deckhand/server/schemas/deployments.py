"""Deployment resources."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictBool

from deckhand.packages.mix import ALL_COPIED
from deckhand.server.schemas.accuracy import AssociationIdOut, AssociationIdSettings
from deckhand.server.schemas.common import (
    NAME_PATTERN,
    ApiModel,
    DeploymentState,
    JsonObject,
    RequestModel,
)
from deckhand.server.schemas.revisions import ModelChange
from deckhand.server.schemas.rollouts import CanarySpec, RolloutSummary

DeploymentName = Annotated[str, Field(min_length=1, max_length=100, pattern=NAME_PATTERN)]
Ref = Annotated[str, Field(min_length=1, max_length=100)]
CopyPercent = Annotated[float, Field(gt=0, le=ALL_COPIED, allow_inf_nan=False)]


class DeploymentCreate(RequestModel):
    name: DeploymentName
    environment_id: Ref = Field(description="The environment's id or name.")
    model_package_id: Ref
    description: Annotated[str, Field(max_length=10_000)] = ""
    key_value_config: JsonObject = Field(default_factory=dict)
    active: StrictBool = True
    association_id: AssociationIdSettings | None = Field(
        None, description="Give predictions association ids, to match actuals to (docs/accuracy.md)."
    )


class DeploymentUpdate(RequestModel):
    description: Annotated[str, Field(max_length=10_000)] | None = None
    key_value_config: JsonObject | None = None
    association_id: AssociationIdSettings | None = Field(
        None,
        description="Change how predictions get association ids: the prediction server is given "
        "a new mix (docs/accuracy.md). Predictions and actuals already stored are kept.",
    )
    challenger_copy_percent: CopyPercent | None = Field(
        None,
        description="The percent of the champion's requests copied to the challengers, over 0 and at most "
        "100 (0.5 is one request in 200); the prediction server is given a new mix (docs/rollouts.md).",
    )


class ReplaceModel(ModelChange):
    model_package_id: Ref
    canary: CanarySpec | None = Field(
        None,
        description="Start the new model as a canary with a share of the traffic, stepped up while its "
        "gates hold, instead of replacing at once (docs/rollouts.md).",
    )


class ObservedOut(ApiModel):
    state: DeploymentState | None
    model_id: str | None
    prediction_url: str | None
    message: str | None
    old_model_in_use: bool | None
    updated_at: datetime | None


class DeploymentOut(ApiModel):
    id: str
    name: str
    description: str
    environment_id: str
    model_package_id: str
    active: bool
    key_value_config: JsonObject
    association_id: AssociationIdOut | None
    challenger_copy_percent: float = Field(description="The percent of requests copied to the challengers.")
    revision: int
    created_at: datetime
    updated_at: datetime
    observed: ObservedOut | None
    served_model_id: str = Field(
        description="What the agent should report as observed.modelId: the champion's id, or the id of "
        "its mix with a canary and challengers."
    )
    rollout: RolloutSummary | None = Field(description="The running canary, if any.")

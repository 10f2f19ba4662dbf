"""Canary rollouts and challengers: what `replace` takes to start a canary, and what the
rollout and challenger endpoints answer (docs/rollouts.md)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator

from deckhand.server.schemas.common import ApiModel, JsonObject, RequestModel
from deckhand.server.schemas.revisions import ModelChange

RolloutState = Literal["running", "promoted", "rolled_back", "aborted"]
RUNNING: Final = "running"
PROMOTED: Final = "promoted"
ROLLED_BACK: Final = "rolled_back"
ABORTED: Final = "aborted"
MAX_CHALLENGERS = 5
MAX_INTERVAL_SECONDS = 30 * 86400
DEFAULT_STEP = 10
DEFAULT_INTERVAL_SECONDS = 300
# When another gate is set: a step is not judged on no traffic at all.
DEFAULT_MIN_REQUESTS = 1
# An HTTP header name (RFC 9110 token).
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

Limit = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class CanaryGates(RequestModel):
    """Each gate is optional; a failed one rolls the canary back at once."""

    max_error_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = Field(
        None, description="Largest (user + system errors) / requests of the candidate, 0-1 (0.01 is 1 %)."
    )
    max_p99_ms: Limit | None = Field(None, description="Largest p99 latency of the candidate, in milliseconds.")
    max_psi: Limit | None = Field(
        None, description="Largest PSI of the candidate's predictions against the champion's."
    )
    min_requests: Annotated[StrictInt, Field(ge=1, le=1_000_000_000)] | None = Field(
        None,
        description=f"Candidate requests a step needs before it is judged (it holds until then); "
        f"default {DEFAULT_MIN_REQUESTS} when another gate is set.",
    )

    def limits(self) -> dict[str, Any]:
        """The gates as stored: camelCase keys, only those set, minRequests filled in."""
        found = {
            key: value
            for key, value in self.model_dump(by_alias=True).items()
            if value is not None and key != "minRequests"
        }
        if found or self.min_requests is not None:
            found["minRequests"] = self.min_requests or DEFAULT_MIN_REQUESTS
        return found


class Sticky(RequestModel):
    """Which requests stay on one side: those with the same value of a header, or of a feature."""

    header: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    field: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and not _HEADER_NAME.match(value):
            raise ValueError(f"{value!r} is not an HTTP header name; use letters, digits and '-', e.g. x-customer-id")
        return None if value is None else value.lower()  # header names are case-insensitive

    @model_validator(mode="after")
    def _one_key(self) -> Sticky:
        if (self.header is None) == (self.field is None):
            raise ValueError('give exactly one of header (e.g. {"header": "x-customer-id"}) or field (a feature name)')
        return self

    def as_dict(self) -> dict[str, str]:
        return {"header": self.header} if self.header is not None else {"field": self.field or ""}


class CanarySpec(RequestModel):
    """Start the new model as a canary instead of replacing at once."""

    percent: Annotated[StrictInt, Field(ge=1, le=99)] = Field(description="The candidate's first share, 1-99 %.")
    step: Annotated[StrictInt, Field(ge=1, le=100)] = Field(
        DEFAULT_STEP, description="Percentage points added after each step whose gates pass."
    )
    interval_seconds: Annotated[StrictInt, Field(ge=1, le=MAX_INTERVAL_SECONDS)] = Field(
        DEFAULT_INTERVAL_SECONDS, description="How long each step lasts before its gates are judged."
    )
    gates: CanaryGates = Field(default_factory=lambda: CanaryGates.model_validate({}))
    sticky: Sticky | None = None


class ChallengerIn(RequestModel):
    model_package_id: Annotated[str, Field(min_length=1, max_length=100)]
    force: StrictBool = Field(False, description="Add it even if the compatibility check finds differences.")


class PromoteChallenger(ModelChange):
    """The challenger becomes the champion as the next revision (reason and note as for replace)."""


class GateVerdict(ApiModel):
    value: float | None = Field(description="None when there was nothing to compute it from.")
    limit: float
    verdict: Literal["pass", "fail", "unknown"]


class GateReport(ApiModel):
    """The last evaluation of a step."""

    evaluated_at: datetime
    window_start: datetime
    window_end: datetime
    requests: int = Field(description="The candidate's requests in the window.")
    gates: dict[str, GateVerdict]


class RolloutOut(ApiModel):
    id: str
    deployment_id: str
    model_package_id: str = Field(description="The candidate.")
    from_package_id: str = Field(description="The champion when the rollout started.")
    state: RolloutState
    percent: int
    step: int
    interval_seconds: int
    gates: JsonObject
    sticky: dict[str, str] | None
    reason: str
    note: str
    last_gates: GateReport | None
    outcome: str = Field(description="Why it ended, or why the current step holds.")
    created_by: str | None
    started_at: datetime
    step_started_at: datetime
    next_step_at: datetime | None = Field(description="When the current step is judged (running rollouts only).")
    updated_at: datetime
    ended_at: datetime | None


class RolloutSummary(ApiModel):
    """The deployment's running rollout, in short."""

    id: str
    state: RolloutState
    percent: int
    model_package_id: str = Field(description="The candidate.")


class ChallengerOut(ApiModel):
    model_package_id: str
    model_package_name: str | None
    added_at: datetime
    added_by: str | None

"""Deployment revisions: the models a deployment has run, and the requests that change it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StrictBool, StrictInt

from deckhand.server.replace_reasons import DEFAULT_REASON
from deckhand.server.schemas.common import ApiModel, ReplaceReason, RequestModel

Note = Annotated[str, Field(max_length=2000, description="Free text: what prompted the change.")]


class ModelChange(RequestModel):
    """What a replacement and a rollback both take."""

    reason: ReplaceReason = Field(DEFAULT_REASON, description="Why the model is replaced.")
    note: Note | None = None
    force: StrictBool = Field(False, description="Change the model even if the compatibility check finds differences.")


class Rollback(ModelChange):
    revision: Annotated[StrictInt, Field(ge=1)] | None = Field(
        None,
        description="The revision to return to. Default: the one before the revision now current "
        "(after a rollback, the one before the revision it returned to).",
    )


class RevisionOut(ApiModel):
    number: int
    model_package_id: str
    model_package_name: str | None = Field(description="None when the package has been deleted.")
    created_at: datetime
    created_by: str | None
    reason: ReplaceReason | None = Field(description="None for revision 1 (the model the deployment was created with).")
    note: str
    rollback_to: int | None = Field(description="For a rollback: the revision it returned to.")
    current: bool


class RollbackOut(ApiModel):
    deployment_id: str
    changed: bool = Field(description="False when the deployment already ran that revision's package.")
    message: str
    revision: RevisionOut = Field(description="The revision now current.")

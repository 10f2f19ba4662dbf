"""Why a deployment's model is replaced: DataRobot's list, details in a free-text note.

A plain tuple so that the CLI can offer it without importing pydantic; the API's
`schemas.common.ReplaceReason` spells the same values as a `Literal` (a test keeps the two
one fact).
"""

from __future__ import annotations

from typing import Final

REPLACE_REASONS: tuple[str, ...] = (
    "accuracy",
    "data_drift",
    "errors",
    "scheduled_refresh",
    "scoring_speed",
    "other",
)
DEFAULT_REASON: Final = "other"

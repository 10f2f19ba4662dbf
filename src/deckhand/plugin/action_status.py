"""ActionStatus / ActionStatusInfo: what every plugin action returns (bosun's documented protocol)."""

from __future__ import annotations

import time

from deckhand.plugin.constants import DeploymentState

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from typing import Any


# The six keys of a status file, in the order they are written.
STATUS_FILE_KEYS: tuple[str, ...] = ("data", "duration", "msg", "state", "status", "timestamp")


class ActionDataFields:
    """Keys a plugin may put in `ActionStatusInfo.data` that the agent reads."""

    PREDICTION_URL = "predictionUrl"
    DASHBOARD_URL = "dashboardUrl"
    OLD_MODEL_IN_USE = "oldModelInUse"
    DEPLOYMENTS_STATUS = "deploymentsStatus"
    CURRENT_MODEL_ID = "currentModelId"


class ActionStatus:
    OK = "passing"
    WARN = "warning"
    ERROR = "failing"
    UNKNOWN = "unknown"

    # Exit codes of `bosun-plugin-runner --exit-codes`.
    to_numeric = {OK: 0, ERROR: 1, WARN: 2, UNKNOWN: 3}

    @classmethod
    def is_valid(cls, status: object) -> bool:
        return status in cls.to_numeric


class ActionStatusInfo:
    """The result of one action. `timestamp` (ms) is stamped at creation."""

    def __init__(
        self,
        status: str,
        msg: str | None = None,
        state: str | None = None,
        duration: float | None = None,
        data: dict[str, Any] | None = None,
    ):
        if not ActionStatus.is_valid(status):
            raise ValueError(f"status: expected one of {sorted(ActionStatus.to_numeric)}, got {status!r}")
        self.status = status
        self.msg = msg
        self.state = state
        self.duration = duration
        self.data = data
        self.timestamp = int(time.time() * 1000)

    def set_duration(self, duration: float) -> None:
        self.duration = duration

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in STATUS_FILE_KEYS}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ActionStatusInfo:
        info = cls(
            values.get("status", ActionStatus.UNKNOWN),
            msg=values.get("msg"),
            state=values.get("state"),
            duration=values.get("duration"),
            data=values.get("data"),
        )
        if values.get("timestamp") is not None:
            info.timestamp = int(values["timestamp"])
        return info

    def to_yaml(self) -> str:
        """The status file's text: block YAML, as the documented runner writes it."""
        from deckhand import yamlio

        return yamlio.dumps_block(self.to_dict())

    def write_to_file(self, status_file: str | None = None) -> None:
        if status_file:
            from deckhand.fsutil import atomic_write_text

            atomic_write_text(status_file, self.to_yaml())

    def __str__(self) -> str:
        return self.to_yaml()

    def __repr__(self) -> str:
        return f"ActionStatusInfo(status={self.status!r}, state={self.state!r}, msg={self.msg!r})"


def failing_status(
    action: str,
    msg: str,
    *,
    data: dict[str, Any] | None = None,
    duration: float | None = None,
) -> ActionStatusInfo:
    """The failing result of `action`, with `msg` saying why, `state` errored.

    Errored whatever the action, as the documented runner reports every failure: nobody
    knows what a failed action left behind, and an errored deployment is relaunched by the
    agent's next pass (the agent reads `state` only for actions about one deployment).

    A plugin that knows better says so with its own ActionStatusInfo (a failed model
    replacement that left the old model serving reports `ready`). `action` names the
    failed action for the reader. `msg` is used as given: mask it (deckhand.secrets.mask)
    when it may hold a secret.
    """
    return ActionStatusInfo(ActionStatus.ERROR, msg=msg, state=DeploymentState.ERROR, duration=duration, data=data)

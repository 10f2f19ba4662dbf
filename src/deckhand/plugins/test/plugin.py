"""The test plugin (bosun's documented test plugin): every action sleeps its configured time and records
per-deployment state under tmp_dir, so deployment_list and deployment_status reflect
what was started and stopped. Used to exercise the agent without real infrastructure."""

from __future__ import annotations

import json
import os
import re
import time

from deckhand.fsutil import atomic_write_text
from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo
from deckhand.plugin.base import BosunPluginBase
from deckhand.plugin.constants import BosunPluginConfigConstants, DeploymentState
from deckhand.plugin.deployment_info import DeploymentInfo
from deckhand.plugin.errors import ConfigError, describe

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from typing import Any

SLEEP_KEYS = (
    "launch_time_sec",
    "stop_time_sec",
    "replace_model_time_sec",
    "pe_status_time_sec",
    "deployment_status_time_sec",
    "deployment_list_time_sec",
    "plugin_start_time",
    "plugin_stop_time",
)
STATE_SUFFIX = ".json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class TestPlugin(BosunPluginBase):
    __test__ = False  # not a pytest test class

    def __init__(self, plugin_config, private_config_file=None, pe_info=None, dry_run=False):
        super().__init__(plugin_config, private_config_file, pe_info, dry_run)
        settings: dict[str, Any] = {**self._plugin_config, **self.read_private_config()}
        self._sleeps: dict[str, float] = {}
        for key in SLEEP_KEYS:
            value = settings.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(key, f"expected a number of seconds >= 0, got {describe(value)}")
            self._sleeps[key] = float(value)
        tmp_dir = settings.get("tmp_dir") or _system_temp_dir()
        env_id = str(
            settings.get(BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_ID_KEY)
            or (self._pe_info.id if self._pe_info else "default")
        )
        self._state_dir = os.path.join(tmp_dir, "deckhand-test-plugin", _safe(env_id, "environment id"))

    def _sleep(self, key: str) -> None:
        if self._sleeps[key]:
            time.sleep(self._sleeps[key])

    # State files are JSON and paths plain strings: this plugin is what the runner's
    # start-up benchmark runs, so it imports nothing it can do without.
    def _state_file(self, deployment_id: str) -> str:
        return os.path.join(self._state_dir, f"{_safe(deployment_id, 'deploymentInfo.id')}{STATE_SUFFIX}")

    def _read(self, deployment_id: str) -> dict[str, Any] | None:
        try:
            with open(self._state_file(deployment_id), encoding="utf-8") as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None

    def _write(self, di: DeploymentInfo) -> dict[str, Any]:
        record = {"deployment_id": di.id, "model_id": di.current_model_id, "state": DeploymentState.READY}
        if not self._dry_run:
            os.makedirs(self._state_dir, exist_ok=True)
            atomic_write_text(self._state_file(di.id), json.dumps(record))
        return record

    def _status_for(self, deployment_id: str) -> ActionStatusInfo:
        record = self._read(deployment_id)
        if record is None:
            return ActionStatusInfo(
                ActionStatus.OK, msg=f"deployment {deployment_id} is not running", state=DeploymentState.STOPPED
            )
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=f"deployment {deployment_id} runs model {record['model_id']}",
            state=record["state"],
            data={ActionDataFields.CURRENT_MODEL_ID: record["model_id"]},
        )

    def plugin_start(self) -> ActionStatusInfo:
        self._sleep("plugin_start_time")
        return ActionStatusInfo(ActionStatus.OK, msg=f"test plugin started; state in {self._state_dir}")

    def plugin_stop(self) -> ActionStatusInfo:
        self._sleep("plugin_stop_time")
        return ActionStatusInfo(ActionStatus.OK, msg="test plugin stopped")

    def deployment_start(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        self._sleep("launch_time_sec")
        record = self._write(deployment_info)
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=f"launched deployment {deployment_info.id}",
            state=DeploymentState.READY,
            data={
                ActionDataFields.CURRENT_MODEL_ID: record["model_id"],
                ActionDataFields.PREDICTION_URL: f"http://test.invalid/deployments/{deployment_info.id}/predictions",
            },
        )

    def deployment_replace_model(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        self._sleep("replace_model_time_sec")
        record = self._write(deployment_info)
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=f"deployment {deployment_info.id} now runs model {record['model_id']}",
            state=DeploymentState.READY,
            data={ActionDataFields.CURRENT_MODEL_ID: record["model_id"]},
        )

    def deployment_stop(self, deployment_id: str) -> ActionStatusInfo:
        self._sleep("stop_time_sec")
        if not self._dry_run:
            try:
                os.unlink(self._state_file(str(deployment_id)))
            except FileNotFoundError:
                pass
        return ActionStatusInfo(
            ActionStatus.OK, msg=f"stopped deployment {deployment_id}", state=DeploymentState.STOPPED
        )

    def deployment_status(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        self._sleep("deployment_status_time_sec")
        return self._status_for(deployment_info.id)

    def deployment_list(self) -> ActionStatusInfo:
        self._sleep("deployment_list_time_sec")
        data = {}
        if os.path.isdir(self._state_dir):
            for name in sorted(os.listdir(self._state_dir)):
                if name.endswith(STATE_SUFFIX) and not name.startswith("."):
                    deployment_id = name[: -len(STATE_SUFFIX)]
                    data[deployment_id] = self._status_for(deployment_id).to_dict()
        return ActionStatusInfo(ActionStatus.OK, msg=f"{len(data)} deployment(s) running", data=data)

    def pe_status(self) -> ActionStatusInfo:
        self._sleep("pe_status_time_sec")
        statuses = {
            d.id: self._status_for(d.id).to_dict() for d in (self._pe_info.deployments if self._pe_info else [])
        }
        not_ready = [d for d, s in statuses.items() if s["state"] != DeploymentState.READY]
        status = ActionStatus.WARN if not_ready else ActionStatus.OK
        msg = f"{len(statuses) - len(not_ready)} of {len(statuses)} deployment(s) ready"
        return ActionStatusInfo(status, msg=msg, data={ActionDataFields.DEPLOYMENTS_STATUS: statuses})


def _system_temp_dir() -> str:
    import tempfile  # only when tmp_dir is not configured

    return tempfile.gettempdir()  # honours TMPDIR


def _safe(value: str, field: str) -> str:
    if not _SAFE_ID.match(value) or ".." in value:
        raise ConfigError(field, f"{value!r} cannot be used as a file name", "use letters, digits, '.', '_' or '-'")
    return value

"""The test plugin (bosun's documented test plugin): every action sleeps its configured time
and keeps state where the documentation says, in `tmp_dir`: `pe_<pe id>.yaml` while the
plugin is started, `deployment_<deployment id>.yaml` (the deployment's fields) while a
deployment runs. Used to exercise the agent without real infrastructure."""

from __future__ import annotations

import json
import os
import time

from deckhand.fsutil import atomic_write_text
from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo
from deckhand.plugin.base import BosunPluginBase
from deckhand.plugin.constants import RUNNING, BosunPluginConfigConstants, DeploymentState
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
PE_PREFIX = "pe_"
DEPLOYMENT_PREFIX = "deployment_"
SUFFIX = ".yaml"
# Characters of an id used in a file name (a set, not a regex: compiling one costs every runner start).
_ID_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_CHARS = _ID_FIRST | frozenset("._-")


class TestPlugin(BosunPluginBase):
    __test__ = False  # not a pytest test class

    def __init__(self, plugin_config, private_config_file=None, pe_info=None, dry_run=False):
        super().__init__(plugin_config, private_config_file, pe_info, dry_run)
        settings: dict[str, Any] = {**self._plugin_config, **self.read_private_config()}
        self._sleeps: dict[str, float] = {}
        for key in SLEEP_KEYS:
            # 0 s unless set (the documented plugin waits 2-10 s): tests and the quickstart use it bare.
            value = settings.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(key, f"expected a number of seconds >= 0, got {describe(value)}")
            self._sleeps[key] = float(value)
        self._raise = bool(settings.get("raise_exception", False))
        self._assert_has_api_token = bool(settings.get("assert_has_api_token", False))
        self._tmp_dir = str(settings.get("tmp_dir") or _system_temp_dir())
        env_id = str(
            settings.get(BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_ID_KEY)
            or (self._pe_info.id if self._pe_info else "default")
        )
        self._pe_file = os.path.join(self._tmp_dir, f"{PE_PREFIX}{_safe(env_id, 'environment id')}{SUFFIX}")

    # ----- state files ---------------------------------------------------------------
    # Written as JSON, which is YAML: this plugin is what the runner's start-up benchmark
    # runs, and reading its own files then needs no YAML library.
    def _sleep(self, key: str) -> None:
        if self._sleeps[key]:
            time.sleep(self._sleeps[key])

    def _raise_if_set(self) -> None:
        if self._raise:
            raise RuntimeError("test plugin raises, as raise_exception is set")

    def _deployment_file(self, deployment_id: str) -> str:
        return os.path.join(self._tmp_dir, f"{DEPLOYMENT_PREFIX}{_safe(deployment_id, 'deploymentInfo.id')}{SUFFIX}")

    def _write(self, path: str, values: dict[str, Any]) -> None:
        if not self._dry_run:
            os.makedirs(self._tmp_dir, exist_ok=True)  # a fresh tmp_dir need not exist yet
            atomic_write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n")

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            return None
        from deckhand import yamlio  # a file the documented plugin wrote is block YAML

        values = yamlio.loads(text)
        return values if isinstance(values, dict) else {}

    def _stamp(self, path: str) -> dict[str, Any] | None:
        """The file's content with status_timestamp set to now, as the documented plugin
        records each status check; None when the file is absent."""
        values = self._read(path)
        if values is not None:
            import datetime  # only here: every runner start would pay for it

            values["status_timestamp"] = datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat()
            self._write(path, values)
        return values

    @staticmethod
    def _content(di: DeploymentInfo) -> dict[str, Any]:
        content = {
            "name": di.name,
            "model_id": di.model_id,
            "key_value_config": di.kv_config,
            "model_execution_type": di.model_execution_type,
            "model_artifact": None if di.model_artifact is None else str(di.model_artifact),
            "state": RUNNING,
        }
        if di.new_model_id:
            content["new_model_id"] = di.new_model_id
        return content

    def _status_of(self, deployment_id: str) -> ActionStatusInfo:
        content = self._stamp(self._deployment_file(deployment_id))
        if content is None:
            return ActionStatusInfo(
                ActionStatus.ERROR, msg=f"deployment {deployment_id} not found", state=DeploymentState.ERROR
            )
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=f"deployment {deployment_id} runs model {content.get('model_id')}",
            state=DeploymentState.READY,
            data={ActionDataFields.CURRENT_MODEL_ID: content.get("model_id")},
        )

    # ----- actions -------------------------------------------------------------------
    def plugin_start(self) -> ActionStatusInfo:
        self._raise_if_set()
        if self._assert_has_api_token:
            for key in (BosunPluginConfigConstants.MLOPS_API_TOKEN_KEY, BosunPluginConfigConstants.MLOPS_URL_KEY):
                if not self._plugin_config.get(key):
                    raise ConfigError("pluginConfig", f"{key} was not passed to the plugin (assert_has_api_token)")
        self._sleep("plugin_start_time")
        self._write(self._pe_file, {"state": RUNNING})
        return ActionStatusInfo(ActionStatus.OK, msg=f"test plugin started; state in {self._tmp_dir}")

    def plugin_stop(self) -> ActionStatusInfo:
        self._raise_if_set()
        self._sleep("plugin_stop_time")
        if not self._dry_run and os.path.exists(self._pe_file):
            os.unlink(self._pe_file)
        return ActionStatusInfo(ActionStatus.OK, msg="test plugin stopped")

    def deployment_start(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        self._raise_if_set()
        self._sleep("launch_time_sec")
        self._write(self._deployment_file(deployment_info.id), self._content(deployment_info))
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=f"launched deployment {deployment_info.id}",
            state=DeploymentState.READY,
            data={
                ActionDataFields.CURRENT_MODEL_ID: deployment_info.model_id,
                ActionDataFields.PREDICTION_URL: f"http://test.invalid/deployments/{deployment_info.id}/predictions",
            },
        )

    def deployment_replace_model(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        self._sleep("replace_model_time_sec")
        path = self._deployment_file(deployment_info.id)
        if self._raise:
            # As documented: a deployment that an earlier replacement left on another model
            # keeps it; any other failure is an exception.
            current = self._read(path)
            if current is not None and current.get("model_id") != deployment_info.model_id:
                return ActionStatusInfo(
                    ActionStatus.ERROR,
                    msg="model not replaced; the deployment keeps its old model",
                    state=DeploymentState.ERROR,
                    data={ActionDataFields.OLD_MODEL_IN_USE: True},
                )
            self._raise_if_set()
        content = self._content(deployment_info)
        if "new_model_id" in content:
            content["model_id"] = content["new_model_id"]
        self._write(path, content)
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=f"deployment {deployment_info.id} now runs model {content['model_id']}",
            state=DeploymentState.READY,
            data={ActionDataFields.CURRENT_MODEL_ID: content["model_id"]},
        )

    def deployment_stop(self, deployment_id: str) -> ActionStatusInfo:
        self._raise_if_set()
        path = self._deployment_file(str(deployment_id))
        if not self._dry_run and os.path.exists(path):
            os.unlink(path)
        self._sleep("stop_time_sec")
        return ActionStatusInfo(
            ActionStatus.OK, msg=f"stopped deployment {deployment_id}", state=DeploymentState.STOPPED
        )

    def deployment_status(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        self._raise_if_set()
        self._sleep("deployment_status_time_sec")
        return self._status_of(deployment_info.id)

    def deployment_list(self) -> ActionStatusInfo:
        """Each running deployment's file content, as the documented plugin lists them, with
        what the agent reads added (status and data.currentModelId)."""
        self._raise_if_set()
        self._sleep("deployment_list_time_sec")
        data = {}
        names = os.listdir(self._tmp_dir) if os.path.isdir(self._tmp_dir) else []
        for name in sorted(names):
            if not (name.startswith(DEPLOYMENT_PREFIX) and name.endswith(SUFFIX)):
                continue
            # The id is all between prefix and suffix (ids may hold '_' and '.').
            content = self._read(os.path.join(self._tmp_dir, name))
            if content is not None:
                content.setdefault("status", ActionStatus.OK)
                content.setdefault("data", {ActionDataFields.CURRENT_MODEL_ID: content.get("model_id")})
                data[name[len(DEPLOYMENT_PREFIX) : -len(SUFFIX)]] = content
        return ActionStatusInfo(ActionStatus.OK, msg=f"{len(data)} deployment(s) running", data=data)

    def pe_status(self) -> ActionStatusInfo:
        self._raise_if_set()
        self._sleep("pe_status_time_sec")
        if self._stamp(self._pe_file) is None:
            return ActionStatusInfo(
                ActionStatus.ERROR, msg=f"environment not found ({self._pe_file} is absent: run plugin_start)"
            )
        statuses = {d.id: self._status_of(d.id).to_dict() for d in (self._pe_info.deployments if self._pe_info else [])}
        ready = sum(1 for s in statuses.values() if s["state"] == DeploymentState.READY)
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=f"environment started; {ready} of {len(statuses)} listed deployment(s) running",
            data={ActionDataFields.DEPLOYMENTS_STATUS: statuses},
        )


def _system_temp_dir() -> str:
    import tempfile  # only when tmp_dir is not configured

    return tempfile.gettempdir()  # honours TMPDIR


def _safe(value: str, field: str) -> str:
    if not value or value[0] not in _ID_FIRST or not set(value) <= _ID_CHARS or ".." in value:
        raise ConfigError(field, f"{value!r} cannot be used as a file name", "use letters, digits, '.', '_' or '-'")
    return value

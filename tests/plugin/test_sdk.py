"""The SDK classes: validation, serialisation, the base class's invoke and relaunch."""

from __future__ import annotations

import pytest

from deckhand.plugin import (
    ActionStatus,
    ActionStatusInfo,
    BosunPluginBase,
    DeploymentInfo,
    DeploymentState,
    PEInfo,
    failing_status,
)
from deckhand.plugin.action_config import truthy
from deckhand.plugin.action_status import STATUS_FILE_KEYS
from deckhand.plugin.constants import ACTIONS
from deckhand.plugin.errors import ConfigError


def test_status_values_and_exit_codes_follow_the_protocol():
    assert (ActionStatus.OK, ActionStatus.WARN, ActionStatus.ERROR, ActionStatus.UNKNOWN) == (
        "passing",
        "warning",
        "failing",
        "unknown",
    )
    assert ActionStatus.to_numeric == {"passing": 0, "failing": 1, "warning": 2, "unknown": 3}


def test_action_status_info_has_exactly_the_six_keys_and_a_ms_timestamp():
    info = ActionStatusInfo(ActionStatus.OK, msg="hi", state=DeploymentState.READY, data={"a": 1})
    assert tuple(sorted(info.to_dict())) == STATUS_FILE_KEYS
    assert info.timestamp > 1_600_000_000_000
    round_trip = ActionStatusInfo.from_dict(info.to_dict())
    assert round_trip.to_dict() == info.to_dict()


def test_bad_status_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="status: expected one of .*'passing'.*got 'ok'"):
        ActionStatusInfo("ok")


def test_deployment_info_exposes_documented_attributes():
    di = DeploymentInfo(
        {
            "id": 7,
            "modelId": "m1",
            "newModelId": "m2",
            "modelArtifact": "/a",
            "keyValueConfig": {"k": "v"},
            "modelExecutionType": "dedicated",
        }
    )
    assert (di.id, di.model_id, di.new_model_id, di.current_model_id) == ("7", "m1", "m2", "m2")
    assert di.model_artifact == "/a" and di.kv_config == {"k": "v"}


@pytest.mark.parametrize(
    "values, message",
    [
        ({}, r"deploymentInfo.id: is missing"),
        ({"id": ""}, r"deploymentInfo.id: expected a non-empty string"),
        ({"id": "d", "modelId": ["x"]}, r"deploymentInfo.modelId: expected a non-empty string, got list"),
        ({"id": "d", "keyValueConfig": "x"}, r"deploymentInfo.keyValueConfig: expected a mapping"),
    ],
)
def test_deployment_info_errors_name_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        DeploymentInfo(values)


def test_pe_info_accepts_ids_and_mappings():
    pe = PEInfo({"id": "pe", "deployments": ["a", {"id": "b", "modelId": "m"}, 3]})
    assert [d.id for d in pe.deployments] == ["a", "b", "3"]
    with pytest.raises(ConfigError, match=r"peInfo.deployments\[0\]: expected a deployment id"):
        PEInfo({"id": "pe", "deployments": [[1]]})
    with pytest.raises(ConfigError, match=r"peInfo.id: is missing"):
        PEInfo({"deployments": []})


class Recorder(BosunPluginBase):
    """A plugin that records calls; its behaviour is set per test."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, object]] = []
        self.stop_result: object = ActionStatusInfo(ActionStatus.ERROR, msg="stop failed")

    def _ok(self, name, arg=None):
        self.calls.append((name, arg))
        return ActionStatusInfo(ActionStatus.OK)

    def plugin_start(self):
        return self._ok("plugin_start")

    def plugin_stop(self):
        return self._ok("plugin_stop")

    def deployment_list(self):
        return self._ok("deployment_list")

    def deployment_start(self, di):
        return self._ok("deployment_start", di)

    def deployment_replace_model(self, di):
        return self._ok("deployment_replace_model", di)

    def pe_status(self):
        return "not a status"

    def deployment_status(self, di):
        raise RuntimeError("boom")

    def deployment_stop(self, deployment_id):
        self.calls.append(("deployment_stop", deployment_id))
        return self.stop_result


def test_default_relaunch_stops_then_starts_whatever_stop_returned():
    plugin = Recorder({})
    di = DeploymentInfo({"id": "d1", "modelId": "m", "modelArtifact": "/x"})
    status = plugin.invoke("deployment_relaunch", di)
    assert status.status == ActionStatus.OK
    assert [c[0] for c in plugin.calls] == ["deployment_stop", "deployment_start"]
    stop_arg = plugin.calls[0][1]
    # deployment_stop gets the id (protocol) which also answers DeploymentInfo attributes.
    assert stop_arg == "d1" and stop_arg.model_id == "m"


def test_invoke_turns_wrong_types_and_exceptions_into_failing_statuses():
    plugin = Recorder({})
    wrong = plugin.invoke("pe_status")
    assert wrong.status == ActionStatus.ERROR
    assert "Recorder.pe_status returned str 'not a status'; expected an ActionStatusInfo" in wrong.msg
    raised = plugin.invoke("deployment_status", DeploymentInfo({"id": "d"}))
    assert raised.status == ActionStatus.ERROR and raised.state == DeploymentState.ERROR
    assert "deployment_status raised RuntimeError: boom" in raised.msg
    assert raised.duration is not None and raised.duration >= 0


@pytest.mark.parametrize("action", [*ACTIONS, "deployment_explode"])
def test_failing_status_is_errored_whatever_the_action(action):
    """As the documented runner reports every failure."""
    status = failing_status(action, "it broke", data={"k": 1}, duration=0.5)
    assert (status.status, status.msg, status.data, status.duration) == (ActionStatus.ERROR, "it broke", {"k": 1}, 0.5)
    assert status.state == DeploymentState.ERROR


def test_invoke_failures_are_errored_for_environment_and_deployment_actions():
    plugin = Recorder({})
    di = DeploymentInfo({"id": "d"})
    assert plugin.invoke("pe_status", di).state == DeploymentState.ERROR
    assert plugin.invoke("deployment_status", di).state == DeploymentState.ERROR


def test_unknown_action_is_a_failing_status_naming_the_choices():
    status = Recorder({}).invoke("deployment_explode")
    assert status.status == ActionStatus.ERROR
    assert "unknown action 'deployment_explode'" in status.msg and "pe_status" in status.msg


def test_bosun_import_paths_are_the_same_classes():
    from bosun.plugin import action_status, bosun_plugin_base, constants, deployment_info, pe_info

    assert action_status.ActionStatusInfo is ActionStatusInfo
    assert bosun_plugin_base.BosunPluginBase is BosunPluginBase
    assert constants.DeploymentState is DeploymentState
    assert deployment_info.DeploymentInfo is DeploymentInfo
    assert pe_info.PEInfo is PEInfo


def test_secrets_are_masked_in_sanitized_config():
    cleaned = BosunPluginBase.get_sanitized_config({"mlopsApiToken": "abcd1234", "baseDir": "/x"})
    assert cleaned == {"mlopsApiToken": "****", "baseDir": "/x"}


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_documents_its_contract(action):
    doc = getattr(BosunPluginBase, action).__doc__ or ""
    assert "Returns" in doc or "returns" in doc, f"{action}: say what it returns"
    assert "dempotent" in doc, f"{action}: say whether it must be idempotent"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(word, True) for word in ("1", "true", "True", " YES ", "on", True, 1)],
        *[(word, False) for word in ("0", "false", "off", "no", "", "maybe", "enabled", None, False, 0)],
    ],
)
def test_truthy_is_true_only_for_a_word_that_says_so(value, expected):
    # An unclear string ("maybe") is false: it must never switch something on.
    assert truthy(value) is expected

"""The test plugin: sleeps as configured and remembers what was started and stopped."""

from __future__ import annotations

import json
import time

import pytest
from tests.plugin.helpers import action_args, run_runner, write_yaml

from deckhand.plugin import ActionStatus, DeploymentInfo, DeploymentState, PEInfo
from deckhand.plugins.test.plugin import TestPlugin


def make(tmp_path, **settings):
    return TestPlugin({"tmp_dir": str(tmp_path), **settings}, None, PEInfo({"id": "pe", "deployments": ["a", "b"]}))


def test_state_follows_start_replace_and_stop(tmp_path):
    p = make(tmp_path)
    a = DeploymentInfo({"id": "a", "modelId": "m1", "modelArtifact": "/x"})
    assert p.invoke("deployment_status", a).state == DeploymentState.STOPPED
    assert p.invoke("deployment_start", a).state == DeploymentState.READY
    assert set(p.invoke("deployment_list").data) == {"a"}
    replaced = p.invoke("deployment_replace_model", DeploymentInfo({"id": "a", "modelId": "m1", "newModelId": "m2"}))
    assert replaced.data["currentModelId"] == "m2"
    assert p.invoke("deployment_status", a).data["currentModelId"] == "m2"
    pe = p.invoke("pe_status")
    assert pe.status == ActionStatus.WARN and pe.data["deploymentsStatus"]["b"]["state"] == DeploymentState.STOPPED
    p.invoke("deployment_stop", a)
    assert p.invoke("deployment_list").data == {}


def test_sleeps_for_the_configured_time(tmp_path):
    p = make(tmp_path, launch_time_sec=0.3)
    started = time.monotonic()
    status = p.invoke("deployment_start", DeploymentInfo({"id": "a", "modelId": "m", "modelArtifact": "/x"}))
    assert time.monotonic() - started >= 0.3 and status.duration >= 0.3


def test_default_tmp_dir_honours_tmpdir(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    p = TestPlugin({}, None, PEInfo({"id": "pe"}))
    p.invoke("deployment_start", DeploymentInfo({"id": "a", "modelId": "m", "modelArtifact": "/x"}))
    assert (tmp_path / "deckhand-test-plugin" / "pe" / "a.json").exists()


@pytest.mark.parametrize("suffix, dump", [(".yaml", lambda v: __import__("yaml").safe_dump(v)), (".json", json.dumps)])
def test_private_config_yaml_or_json_through_the_cli(tmp_path, suffix, dump):
    private = tmp_path / f"test-plugin{suffix}"
    private.write_text(dump({"tmp_dir": str(tmp_path / "st"), "launch_time_sec": 0}))
    cfg = write_yaml(
        tmp_path / "c.yaml", {"pluginConfig": {}, "deploymentInfo": {"id": "a", "modelId": "m", "modelArtifact": "/x"}}
    )
    for action in (
        "plugin_start",
        "deployment_start",
        "deployment_status",
        "deployment_list",
        "deployment_replace_model",
        "deployment_stop",
        "plugin_stop",
    ):
        result = run_runner(
            *action_args("test", action, cfg, private),
            status_file=tmp_path / f"{action}.yaml",
        )
        assert result.status["status"] == "passing", (action, result.status)
    assert result.status is not None
    assert not list((tmp_path / "st" / "deckhand-test-plugin" / "default").glob("*.json"))


def test_bad_sleep_value_names_the_key(tmp_path):
    status = run_runner(
        "--plugin",
        "test",
        "--action",
        "plugin_start",
        "--config",
        str(write_yaml(tmp_path / "c.yaml", {"pluginConfig": {"launch_time_sec": "soon"}})),
        status_file=tmp_path / "s.yaml",
    ).status
    assert status["status"] == "failing"
    assert status["msg"].startswith("launch_time_sec: expected a number of seconds >= 0, got str 'soon'")

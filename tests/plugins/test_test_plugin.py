"""The test plugin: sleeps as configured and remembers what was started and stopped."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from tests.plugin.helpers import action_args, run_runner, write_yaml

from deckhand.plugin import ActionStatus, DeploymentInfo, DeploymentState, PEInfo
from deckhand.plugins.test.plugin import TestPlugin


def make(tmp_path, **settings):
    return TestPlugin({"tmp_dir": str(tmp_path), **settings}, None, PEInfo({"id": "pe", "deployments": ["a", "b"]}))


def test_state_follows_start_replace_and_stop(tmp_path):
    p = make(tmp_path)
    a = DeploymentInfo({"id": "a", "modelId": "m1", "modelArtifact": "/x"})
    assert p.invoke("deployment_status", a).state == DeploymentState.ERROR  # not found, as documented
    assert p.invoke("pe_status").status == ActionStatus.ERROR  # plugin_start has not run
    assert p.invoke("plugin_start").status == ActionStatus.OK
    assert p.invoke("deployment_start", a).state == DeploymentState.READY
    assert set(p.invoke("deployment_list").data) == {"a"}
    replaced = p.invoke("deployment_replace_model", DeploymentInfo({"id": "a", "modelId": "m1", "newModelId": "m2"}))
    assert replaced.data["currentModelId"] == "m2"
    assert p.invoke("deployment_status", a).data["currentModelId"] == "m2"
    pe = p.invoke("pe_status")
    assert pe.status == ActionStatus.OK and pe.data["deploymentsStatus"]["b"]["state"] == DeploymentState.ERROR
    p.invoke("deployment_stop", a)
    assert p.invoke("deployment_list").data == {}
    assert p.invoke("plugin_stop").status == ActionStatus.OK and not (tmp_path / "pe_pe.yaml").exists()


def test_state_files_are_where_the_documentation_says(tmp_path):
    """tmp_dir/pe_<pe id>.yaml and tmp_dir/deployment_<id>.yaml holding the deployment's fields;
    deployment_list returns those fields (ids with '_' and '.' kept whole)."""
    p = make(tmp_path)
    p.invoke("plugin_start")
    info = {"id": "d_1.x", "name": "one", "modelId": "m1", "modelArtifact": "/x", "modelExecutionType": "dedicated"}
    p.invoke("deployment_start", DeploymentInfo({**info, "keyValueConfig": {"k": "v"}}))
    assert yaml.safe_load((tmp_path / "pe_pe.yaml").read_text()) == {"state": "running"}
    content = yaml.safe_load((tmp_path / "deployment_d_1.x.yaml").read_text())
    assert content == {
        "name": "one",
        "model_id": "m1",
        "key_value_config": {"k": "v"},
        "model_execution_type": "dedicated",
        "model_artifact": "/x",
        "state": "running",
    }
    listed = p.invoke("deployment_list").data
    assert set(listed) == {"d_1.x"} and {k: listed["d_1.x"][k] for k in content} == content


def test_raise_exception_makes_every_action_fail(tmp_path):
    p = make(tmp_path, raise_exception=True)
    for action in ("plugin_start", "deployment_list", "pe_status"):
        status = p.invoke(action)
        assert (status.status, status.state) == (ActionStatus.ERROR, DeploymentState.ERROR), action


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
    assert (tmp_path / "deployment_a.yaml").exists()


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
    assert not list((tmp_path / "st").glob("deployment_*.yaml"))


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

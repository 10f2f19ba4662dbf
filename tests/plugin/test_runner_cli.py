"""The runner as a subprocess: flags, status files, exit codes, and every bad input."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from tests.plugin.helpers import action_args, run_runner, write_yaml

from deckhand.plugin.action_status import STATUS_FILE_KEYS

ENTRIES = ["bosun", "deckhand"]


@pytest.fixture
def test_plugin_config(tmp_path):
    return write_yaml(tmp_path / "priv.yaml", {"tmp_dir": str(tmp_path / "state")})


@pytest.mark.parametrize("entry", ENTRIES)
def test_list_actions(entry):
    result = run_runner("--list-actions", entry=entry)
    assert result.returncode == 0
    assert result.stdout.split() == [
        "plugin_start",
        "plugin_stop",
        "deployment_start",
        "deployment_stop",
        "deployment_replace_model",
        "deployment_status",
        "pe_status",
        "deployment_list",
        "deployment_relaunch",
    ]


def test_list_plugins_shows_builtins():
    result = run_runner("--list-plugins")
    assert result.returncode == 0
    assert "filesystem" in result.stdout and "test" in result.stdout and "built-in" in result.stdout


def test_gen_config_writes_a_config_the_runner_accepts(tmp_path, test_plugin_config):
    cfg = tmp_path / "start.yaml"
    result = run_runner("--gen-config", str(cfg), "--action", "deployment_start", "--plugin", "test")
    assert result.returncode == 0, result.stderr
    values = yaml.safe_load(cfg.read_text())
    assert values["deploymentInfo"]["modelId"] == "model-A"
    (tmp_path / "model-A.dhpkg").write_text("x")
    values["deploymentInfo"]["modelArtifact"] = str(tmp_path / "model-A.dhpkg")
    write_yaml(cfg, values)
    status = tmp_path / "status.yaml"
    ran = run_runner(
        *action_args("test", "deployment_start", cfg, test_plugin_config),
        status_file=status,
    )
    assert ran.status["status"] == "passing", ran.status
    # Refuses to overwrite; stdout form works without a file.
    again = run_runner("--gen-config", str(cfg), "--action", "deployment_start")
    assert again.returncode == 2 and "exists" in again.stderr
    to_stdout = run_runner("--gen-config", "--action", "pe_status")
    assert to_stdout.returncode == 0 and "peInfo:" in to_stdout.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--plugin and --action required"),
        (["--plugin", "test"], "--action required"),
        (["--plugin", "test", "--action", "explode"], "is not an action"),
        (["--gen-config"], "--gen-config needs --action"),
        (["--log-level", "LOUD"], "invalid choice"),
    ],
)
def test_usage_errors_exit_non_zero_with_a_message(args, message):
    result = run_runner(*args)
    assert result.returncode == 2
    assert message in result.stderr


def _fail(tmp_path, *args, status_name="status.yaml"):
    status = tmp_path / status_name
    result = run_runner(*args, status_file=status)
    assert result.returncode == 0, result.stderr  # exit 0 whatever the status, without --exit-codes
    assert result.status is not None, "a status file must be written after arguments are parsed"
    assert tuple(sorted(result.status)) == STATUS_FILE_KEYS
    assert result.status["status"] == "failing"
    return result.status["msg"]


def test_missing_config_file(tmp_path):
    msg = _fail(tmp_path, "--plugin", "test", "--action", "plugin_start", "--config", str(tmp_path / "nope.yaml"))
    assert "--config: file" in msg and "nope.yaml does not exist" in msg


def test_malformed_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pluginConfig: [unclosed\n")
    msg = _fail(tmp_path, "--plugin", "test", "--action", "plugin_start", "--config", str(bad))
    assert "bad.yaml is not valid YAML/JSON" in msg


def test_config_that_is_not_a_mapping(tmp_path):
    bad = write_yaml(tmp_path / "list.yaml", [1, 2])
    msg = _fail(tmp_path, "--plugin", "test", "--action", "plugin_start", "--config", str(bad))
    assert "must hold a mapping, found list" in msg


def test_missing_section(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"pluginConfig": {}})
    msg = _fail(tmp_path, "--plugin", "test", "--action", "deployment_start", "--config", str(cfg))
    assert msg.startswith("deploymentInfo: section is missing")
    msg = _fail(tmp_path, "--plugin", "test", "--action", "pe_status", "--config", str(cfg))
    assert msg.startswith("peInfo: section is missing")


def test_missing_model_fields(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"pluginConfig": {}, "deploymentInfo": {"id": "d1"}})
    msg = _fail(tmp_path, "--plugin", "test", "--action", "deployment_start", "--config", str(cfg))
    assert "deploymentInfo.modelId: is missing" in msg


def test_unknown_plugin(tmp_path):
    msg = _fail(tmp_path, "--plugin", "nonexistent_plugin_q", "--action", "plugin_start")
    assert "unknown plugin 'nonexistent_plugin_q'" in msg


def test_module_with_two_plugin_classes(tmp_path):
    source = textwrap.dedent(
        """
        from bosun.plugin.bosun_plugin_base import BosunPluginBase
        class A(BosunPluginBase): pass
        class B(BosunPluginBase): pass
        """
    )
    (tmp_path / "two.py").write_text(source)
    msg = _fail(tmp_path, "--plugin", str(tmp_path / "two.py"), "--action", "plugin_start")
    assert "defines 2 plugin classes (A, B)" in msg


def test_plugin_whose_action_raises_or_returns_the_wrong_type(tmp_path):
    source = textwrap.dedent(
        """
        from bosun.plugin.action_status import ActionStatus, ActionStatusInfo
        from bosun.plugin.bosun_plugin_base import BosunPluginBase
        class Bad(BosunPluginBase):
            def plugin_start(self): raise ValueError("cannot reach the cluster")
            def plugin_stop(self): return {"status": "passing"}
            def deployment_list(self): return None
            def deployment_start(self, di): return None
            def deployment_stop(self, deployment_id): return None
            def deployment_replace_model(self, di): return None
            def pe_status(self): return None
            def deployment_status(self, di): return None
        """
    )
    (tmp_path / "bad_plugin.py").write_text(source)
    msg = _fail(tmp_path, "--plugin", str(tmp_path / "bad_plugin.py"), "--action", "plugin_start")
    assert msg == "plugin_start raised ValueError: cannot reach the cluster"
    msg = _fail(tmp_path, "--plugin", str(tmp_path / "bad_plugin.py"), "--action", "plugin_stop")
    assert "returned dict" in msg and "expected an ActionStatusInfo" in msg


def test_exit_codes_flag(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"pluginConfig": {}})
    ok = run_runner(
        "--plugin",
        "test",
        "--action",
        "plugin_start",
        "--config",
        str(cfg),
        "--exit-codes",
        status_file=tmp_path / "s1.yaml",
    )
    assert ok.returncode == 0 and ok.status["status"] == "passing"
    bad = run_runner(
        "--plugin", "nonexistent_q", "--action", "plugin_start", "--exit-codes", status_file=tmp_path / "s2.yaml"
    )
    assert bad.returncode == 1
    warn = run_runner(
        "--plugin",
        "test",
        "--action",
        "pe_status",
        "--exit-codes",
        "--config",
        str(
            write_yaml(
                tmp_path / "pe.yaml",
                {"peInfo": {"id": "p", "deployments": ["gone"]}, "pluginConfig": {"tmp_dir": str(tmp_path)}},
            )
        ),
        status_file=tmp_path / "s3.yaml",
    )
    assert warn.returncode == 2 and warn.status["status"] == "warning"


def test_api_token_from_environment_is_masked_everywhere(tmp_path):
    import os

    secret = "tok-SuperSecret-123456"
    source = textwrap.dedent(
        """
        from bosun.plugin.action_status import ActionStatus, ActionStatusInfo
        from bosun.plugin.bosun_plugin_base import BosunPluginBase
        class Leaky(BosunPluginBase):
            def plugin_start(self):
                token = self._plugin_config["mlopsApiToken"]
                self._logger.warning("connecting with token %s", token)
                return ActionStatusInfo(ActionStatus.OK, msg="used " + token)
            plugin_stop = deployment_list = pe_status = plugin_start
            def deployment_start(self, di): return None
            def deployment_stop(self, deployment_id): return None
            def deployment_replace_model(self, di): return None
            def deployment_status(self, di): return None
        """
    )
    (tmp_path / "leaky.py").write_text(source)
    log = tmp_path / "runner.log"
    env = {**os.environ, "MLOPS_API_TOKEN": secret}
    result = run_runner(
        "--plugin",
        str(tmp_path / "leaky.py"),
        "--action",
        "plugin_start",
        "--logfile",
        str(log),
        "--show-status",
        status_file=tmp_path / "s.yaml",
        env=env,
    )
    assert result.status["msg"] == "used ****"
    assert "connecting with token ****" in log.read_text()
    for text in (log.read_text(), (tmp_path / "s.yaml").read_text(), result.stdout, result.stderr):
        assert secret not in text


def test_log_config_file_is_used(tmp_path):
    log = tmp_path / "via-config.log"
    cfg = write_yaml(
        tmp_path / "logging.yaml",
        {
            "version": 1,
            "handlers": {"f": {"class": "logging.FileHandler", "filename": str(log)}},
            "root": {"handlers": ["f"], "level": "DEBUG"},
        },
    )
    run_runner(
        "--plugin", "test", "--action", "plugin_start", "--log-config", str(cfg), status_file=tmp_path / "s.yaml"
    )
    assert "running TestPlugin.plugin_start" in log.read_text()


def test_unwritable_status_file_is_a_usage_error(tmp_path):
    result = run_runner("--plugin", "test", "--action", "plugin_start", status_file=tmp_path / "no-such-dir" / "s.yaml")
    assert result.returncode == 2 and "cannot write --status-file" in result.stderr

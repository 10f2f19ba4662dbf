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


def test_list_plugins_prints_each_plugins_names_as_documented():
    result = run_runner("--list-plugins")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    for names in ("test", "filesystem_plugin,filesystem", "docker-plugin,docker", "k8s-plugin,k8s,kubernetes"):
        assert names in lines


def test_documented_plugin_aliases_load_the_built_ins(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"pluginConfig": {"tmp_dir": str(tmp_path)}})
    result = run_runner(
        "--plugin", "test", "--action", "plugin_start", "--config", str(cfg), status_file=tmp_path / "s"
    )
    assert result.status["status"] == "passing"
    # filesystem_plugin is the filesystem plugin: its own complaint, not an unknown name.
    msg = _fail(tmp_path, "--plugin", "filesystem_plugin", "--action", "plugin_start", "--config", str(cfg))
    assert "filesystem plugin config: missing baseDir" in msg


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
    cfg.write_text("old")
    again = run_runner("--gen-config", str(cfg), "--action", "deployment_start")
    assert again.returncode == 0 and "deploymentInfo:" in cfg.read_text()  # replaced, as documented
    to_stdout = run_runner("--gen-config", "--action", "pe_status")
    assert to_stdout.returncode == 0 and "peInfo:" in to_stdout.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "missing --plugin, --action, --config, --status-file"),
        (["--plugin", "test"], "missing --action, --config, --status-file"),
        (["--plugin", "test", "--action", "plugin_start", "--status-file", "s"], "missing --config"),
        (["--plugin", "test", "--action", "plugin_start", "--config", "c"], "missing --status-file"),
        (["--gen-config"], "--gen-config needs --action"),
        (["--gen-config", "--action", "explode"], "'explode' is not an action"),
    ],
)
def test_usage_errors_exit_1_with_a_message_and_run_nothing(args, message, tmp_path):
    result = run_runner(*args, cwd=tmp_path)
    assert result.returncode == 1  # as the documented runner
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_argparse_errors_exit_2_as_in_the_documented_runner():
    result = run_runner("--log-level", "LOUD")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_unknown_action_is_a_failing_status_not_a_usage_error(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"pluginConfig": {}})
    msg = _fail(tmp_path, "--plugin", "test", "--action", "explode", "--config", str(cfg))
    assert "unknown action 'explode'" in msg
    coded = run_runner(
        "--plugin", "test", "--action", "explode", "--config", str(cfg), "--exit-codes", status_file=tmp_path / "s2"
    )
    assert coded.returncode == 1 and coded.status["state"] == "errored"


def _fail(tmp_path, *args, status_name="status.yaml"):
    status = tmp_path / status_name
    result = run_runner(*args, status_file=status)
    assert result.returncode == 0, result.stderr  # exit 0 whatever the status, without --exit-codes
    assert result.status is not None, "a status file must be written after arguments are parsed"
    assert tuple(sorted(result.status)) == STATUS_FILE_KEYS
    assert (result.status["status"], result.status["state"]) == ("failing", "errored")
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


@pytest.fixture
def empty_config(tmp_path):
    return str(write_yaml(tmp_path / "empty.yaml", {"pluginConfig": {}}))


def test_unknown_plugin(tmp_path, empty_config):
    msg = _fail(tmp_path, "--plugin", "nonexistent_plugin_q", "--action", "plugin_start", "--config", empty_config)
    assert "unknown plugin 'nonexistent_plugin_q'" in msg


def test_module_with_two_plugin_classes(tmp_path, empty_config):
    source = textwrap.dedent(
        """
        from bosun.plugin.bosun_plugin_base import BosunPluginBase
        class A(BosunPluginBase): pass
        class B(BosunPluginBase): pass
        """
    )
    (tmp_path / "two.py").write_text(source)
    msg = _fail(tmp_path, "--plugin", str(tmp_path / "two.py"), "--action", "plugin_start", "--config", empty_config)
    assert "defines 2 plugin classes (A, B)" in msg


def test_plugin_whose_action_raises_or_returns_the_wrong_type(tmp_path, empty_config):
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
    bad = ("--plugin", str(tmp_path / "bad_plugin.py"), "--config", empty_config)
    msg = _fail(tmp_path, *bad, "--action", "plugin_start")
    assert msg == "plugin_start raised ValueError: cannot reach the cluster"
    msg = _fail(tmp_path, *bad, "--action", "plugin_stop")
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
        "--plugin",
        "nonexistent_q",
        "--action",
        "plugin_start",
        "--config",
        str(cfg),
        "--exit-codes",
        status_file=tmp_path / "s2.yaml",
    )
    assert bad.returncode == 1
    source = textwrap.dedent(
        """
        from bosun.plugin.action_status import ActionStatus, ActionStatusInfo
        from bosun.plugin.bosun_plugin_base import BosunPluginBase
        class Warns(BosunPluginBase):
            def plugin_start(self): return ActionStatusInfo(ActionStatus.WARN, msg="slow disk")
            plugin_stop = deployment_list = pe_status = plugin_start
            def deployment_start(self, di): return None
            def deployment_stop(self, deployment_id): return None
            def deployment_replace_model(self, di): return None
            def deployment_status(self, di): return None
        """
    )
    (tmp_path / "warns.py").write_text(source)
    warn = run_runner(
        "--plugin",
        str(tmp_path / "warns.py"),
        "--action",
        "plugin_start",
        "--exit-codes",
        "--config",
        str(cfg),
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
        "--config",
        str(write_yaml(tmp_path / "c.yaml", {"pluginConfig": {}})),
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
    action_config = write_yaml(tmp_path / "c.yaml", {"pluginConfig": {"tmp_dir": str(tmp_path)}})
    run_runner(
        *("--plugin", "test", "--action", "plugin_start", "--config", str(action_config)),
        *("--log-config", str(cfg)),
        status_file=tmp_path / "s.yaml",
    )
    assert "running TestPlugin.plugin_start" in log.read_text()


def test_status_file_in_a_missing_directory_exits_1_before_the_action_runs(tmp_path):
    cfg = write_yaml(
        tmp_path / "c.yaml",
        {
            "pluginConfig": {"tmp_dir": str(tmp_path)},
            "deploymentInfo": {"id": "d1", "modelId": "m", "modelArtifact": "/x"},
        },
    )
    result = run_runner(
        *("--plugin", "test", "--action", "deployment_start", "--config", str(cfg)),
        status_file=tmp_path / "no-such-dir" / "s.yaml",
    )
    assert result.returncode == 1 and "no-such-dir does not exist" in result.stderr
    assert not (tmp_path / "deployment_d1.yaml").exists()  # an unrecordable action changes nothing


def test_status_file_is_block_yaml_as_documented(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"pluginConfig": {"tmp_dir": str(tmp_path)}})
    result = run_runner(
        "--plugin",
        "test",
        "--action",
        "plugin_start",
        "--config",
        str(cfg),
        "--show-status",
        status_file=tmp_path / "s",
    )
    text = (tmp_path / "s").read_text()
    assert "status: passing\n" in text and "state: null\n" in text
    assert result.stdout == "\n-- action status --\n" + text + "\n"

"""The filesystem plugin, through the Python API and through the runner as a subprocess."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.plugin.helpers import action_args, filesystem_config, run_runner, write_yaml

from deckhand import deployment_dirs
from deckhand.plugin import ActionStatus, DeploymentInfo, DeploymentState, PEInfo
from deckhand.plugins.filesystem.plugin import FilesystemPlugin
from deckhand.testing import wait_until


@pytest.fixture
def base(tmp_path) -> Path:
    path = tmp_path / "deployments"
    path.mkdir()
    return path


@pytest.fixture
def artifacts(tmp_path) -> dict[str, Path]:
    out = {}
    for name in ("A", "B"):
        path = tmp_path / f"model-{name}.dhpkg"
        path.write_bytes(name.encode() * 1000)
        out[name] = path
    return out


def plugin(base: Path, pe_deployments=None, dry_run=False, **extra) -> FilesystemPlugin:
    config = filesystem_config(base, deploymentPredictionBaseUrl="http://127.0.0.1:8080/", **extra)
    pe = PEInfo({"id": "pe1", "deployments": pe_deployments or []})
    return FilesystemPlugin(config, None, pe, dry_run)


def di(dep_id="d1", model="A", artifact: Path | None = None, **extra) -> DeploymentInfo:
    return DeploymentInfo(
        {"id": dep_id, "modelId": f"model-{model}", "modelArtifact": str(artifact) if artifact else None, **extra}
    )


def test_start_status_list_stop(base, artifacts):
    p = plugin(base, pe_deployments=["d1", "d2"])
    assert p.invoke("plugin_start").status == ActionStatus.OK
    started = p.invoke("deployment_start", di(artifact=artifacts["A"], keyValueConfig={"k": "v"}))
    assert started.status == ActionStatus.OK and started.state == DeploymentState.READY
    # No doubled slash even though the base URL ends with one.
    assert started.data["predictionUrl"] == "http://127.0.0.1:8080/deployments/deployment_d1/predictions"
    directory = base / "deployment_d1"
    info = yaml.safe_load((directory / "config.yml").read_text())
    assert info["deployment_id"] == "d1" and info["model_id"] == "model-A"
    assert (directory / info["model_artifact"]).read_bytes() == artifacts["A"].read_bytes()

    status = p.invoke("deployment_status", di())
    assert status.state == DeploymentState.READY and status.data["currentModelId"] == "model-A"
    listed = p.invoke("deployment_list")
    assert set(listed.data) == {"d1"} and listed.data["d1"]["state"] == DeploymentState.READY
    pe = p.invoke("pe_status")
    assert pe.status == ActionStatus.OK  # d2 is simply not deployed, as the documented plugin says
    assert pe.data["deploymentsStatus"]["d1"]["state"] == DeploymentState.READY
    assert pe.data["deploymentsStatus"]["d1"]["msg"] is None and listed.data["d1"]["msg"] is None
    assert pe.data["deploymentsStatus"]["d2"]["state"] == DeploymentState.ERROR

    stopped = p.invoke("deployment_stop", di())
    assert stopped.state == DeploymentState.STOPPED and not directory.exists()
    assert p.invoke("deployment_stop", di()).status == ActionStatus.OK  # idempotent
    assert p.invoke("deployment_status", di()).state == DeploymentState.ERROR


def test_start_is_idempotent(base, artifacts):
    p = plugin(base)
    p.invoke("deployment_start", di(artifact=artifacts["A"]))
    again = p.invoke("deployment_start", di(artifact=artifacts["A"]))
    assert again.status == ActionStatus.OK and "already running" in again.msg
    assert len(list((base / "deployment_d1").iterdir())) == 2


def test_kv_file_is_written_when_configured(base, artifacts):
    p = plugin(base, deploymentKVFile="kv.yaml")
    p.invoke("deployment_start", di(artifact=artifacts["A"], keyValueConfig={"memory": "1Gi"}))
    assert yaml.safe_load((base / "deployment_d1" / "kv.yaml").read_text()) == {"memory": "1Gi"}


def test_replace_model_swaps_and_removes_old_artifact(base, artifacts):
    p = plugin(base)
    p.invoke("deployment_start", di(artifact=artifacts["A"]))
    replaced = p.invoke("deployment_replace_model", di(model="A", artifact=artifacts["B"], newModelId="model-B"))
    assert replaced.status == ActionStatus.OK and replaced.data["currentModelId"] == "model-B"
    files = sorted(f.name for f in (base / "deployment_d1").iterdir())
    assert files == ["config.yml", "model-B.dhpkg"]
    # Same file name as the current artifact: still a clean swap.
    same_name = artifacts["B"].parent / "again" / "model-B.dhpkg"
    same_name.parent.mkdir()
    same_name.write_bytes(b"C" * 10)
    p.invoke("deployment_replace_model", di(artifact=same_name, newModelId="model-C"))
    entry = deployment_dirs.read_deployment_dir(base / "deployment_d1")
    assert entry.model_id == "model-C" and entry.artifact.read_bytes() == b"C" * 10
    assert len(list((base / "deployment_d1").iterdir())) == 2


def test_replace_with_missing_artifact_keeps_old_model(base, artifacts, tmp_path):
    p = plugin(base)
    p.invoke("deployment_start", di(artifact=artifacts["A"]))
    result = p.invoke("deployment_replace_model", di(artifact=tmp_path / "missing.dhpkg", newModelId="model-B"))
    assert result.status == ActionStatus.ERROR
    assert "does not exist" in result.msg and "model not replaced" in result.msg
    assert result.state == DeploymentState.READY and result.data["oldModelInUse"] is True
    assert result.data["currentModelId"] == "model-A"
    assert p.invoke("deployment_status", di()).data["currentModelId"] == "model-A"


@pytest.mark.parametrize("bad_id", ["../evil", "a/b", "..", ".hidden", ""])
def test_ids_that_would_escape_base_dir_are_refused(base, artifacts, bad_id):
    p = plugin(base, deploymentDirPrefix="")
    result = p.invoke(
        "deployment_start",
        DeploymentInfo({"id": bad_id or "x", "modelId": "m", "modelArtifact": str(artifacts["A"])})
        if bad_id
        else DeploymentInfo({"id": "ok", "modelId": "m", "modelArtifact": str(artifacts["A"])}),
    )
    if not bad_id:
        assert result.status == ActionStatus.OK
        return
    assert result.status == ActionStatus.ERROR and "not allowed" in result.msg
    assert not (base.parent / "evil").exists()
    assert p.invoke("deployment_stop", DeploymentInfo({"id": bad_id})).status == ActionStatus.ERROR


def test_artifact_that_is_a_directory_or_missing(base, tmp_path):
    p = plugin(base)
    directory = tmp_path / "adir"
    directory.mkdir()
    result = p.invoke("deployment_start", di(artifact=directory))
    assert result.status == ActionStatus.ERROR and "is a directory" in result.msg
    result = p.invoke("deployment_start", di(artifact=tmp_path / "nope"))
    assert result.status == ActionStatus.ERROR and "does not exist" in result.msg
    assert list(base.iterdir()) == []


def test_dry_run_writes_nothing(base, artifacts):
    dry = plugin(base, dry_run=True)
    result = dry.invoke("deployment_start", di(artifact=artifacts["A"]))
    assert result.status == ActionStatus.OK and result.msg.startswith("dry run: would create")
    assert list(base.iterdir()) == []
    plugin(base).invoke("deployment_start", di(artifact=artifacts["A"]))
    before = sorted(p.name for p in (base / "deployment_d1").iterdir())
    assert "would replace" in dry.invoke("deployment_replace_model", di(artifact=artifacts["B"])).msg
    assert "would remove" in dry.invoke("deployment_stop", di()).msg
    assert sorted(p.name for p in (base / "deployment_d1").iterdir()) == before


def test_base_dir_missing_or_not_a_directory(tmp_path, artifacts):
    missing = plugin(tmp_path / "absent")
    for action in ("plugin_start", "pe_status", "deployment_list"):
        result = missing.invoke(action)
        assert result.status == ActionStatus.ERROR and "does not exist" in result.msg
    start = missing.invoke("deployment_start", di(artifact=artifacts["A"]))
    assert start.status == ActionStatus.ERROR and start.state == DeploymentState.ERROR
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert "is not a directory" in plugin(a_file).invoke("plugin_start").msg


def test_base_dir_not_writable(tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() == 0:
        # root ignores permission bits; the immutable attribute binds root too.
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(target)]).returncode != 0:
            pytest.skip(
                "running as root on a filesystem without chattr +i: cannot make a directory "
                "unwritable for root; run the tests as a normal user to cover this"
            )
    else:
        target.chmod(0o500)
    try:
        result = plugin(target).invoke("plugin_start")
        assert result.status == ActionStatus.ERROR and "not writable" in result.msg
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(target)])
        else:
            target.chmod(0o700)


def test_broken_deployment_dirs_are_reported_not_ready(base, artifacts):
    p = plugin(base)
    p.invoke("deployment_start", di(artifact=artifacts["A"]))
    info = base / "deployment_d1" / "config.yml"
    values = yaml.safe_load(info.read_text())
    (base / "deployment_d1" / values["model_artifact"]).write_bytes(b"trunc")  # size no longer matches
    status = p.invoke("deployment_status", di())
    assert status.state == DeploymentState.ERROR and "expected 1000" in status.msg
    info.write_text("deployment_id: d1\n")
    assert "missing model_id" in p.invoke("deployment_status", di()).msg
    info.unlink()
    assert "no deployment info file" in p.invoke("deployment_list").data["d1"]["msg"]


def test_crash_mid_copy_never_leaves_a_ready_partial_deployment(base, tmp_path):
    big = tmp_path / "big.dhpkg"
    with open(big, "wb") as fh:
        fh.truncate(300 * 1024 * 1024)  # sparse: quick to make, slow enough to copy
    cfg = write_yaml(
        tmp_path / "start.yaml",
        {
            "pluginConfig": filesystem_config(base),
            "deploymentInfo": {"id": "big", "modelId": "m1", "modelArtifact": str(big)},
        },
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deckhand.plugin.runner",
            "--plugin",
            "filesystem",
            "--action",
            "deployment_start",
            "--config",
            str(cfg),
            "--status-file",
            str(tmp_path / "status.yaml"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: any(p.name.startswith(".tmp-") for p in base.iterdir()), 20, 0.005, what="a temporary dir")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    p = plugin(base)
    listed = p.invoke("deployment_list")
    assert (
        "big" not in listed.data
        or listed.data["big"]["state"] == DeploymentState.READY
        and ((base / "deployment_big").exists())
    )
    if "big" in listed.data:  # the copy finished before the kill: then it is whole
        entry = deployment_dirs.read_deployment_dir(base / "deployment_big")
        assert entry.artifact.stat().st_size == big.stat().st_size
    # The next start cleans up leftovers and succeeds.
    assert p.invoke("plugin_start").status == ActionStatus.OK
    assert not any(x.name.startswith(".tmp-") for x in base.iterdir())
    assert p.invoke("deployment_start", di("big", artifact=big)).state == DeploymentState.READY


def test_every_action_through_the_runner_cli(base, artifacts, tmp_path):
    private = write_yaml(tmp_path / "fs.yaml", filesystem_config(base, deploymentDirPrefix=""))

    def run(action, deployment=None, pe=None):
        config = {"pluginConfig": {"MLOPS_BOSUN_PRED_ENV_ID": "pe1"}}
        if deployment:
            config["deploymentInfo"] = deployment
        if pe:
            config["peInfo"] = pe
        cfg = write_yaml(tmp_path / f"{action}.yaml", config)
        result = run_runner(
            *action_args("filesystem", action, cfg, private),
            status_file=tmp_path / f"{action}.status.yaml",
        )
        assert result.returncode == 0, result.stderr
        return result.status

    assert run("plugin_start")["status"] == "passing"
    started = run("deployment_start", {"id": "d1", "modelId": "mA", "modelArtifact": str(artifacts["A"])})
    assert started["state"] == "ready"
    assert started["data"]["predictionUrl"] == "http://localhost:8080/deployments/d1/predictions"
    assert run("deployment_status", {"id": "d1"})["data"]["currentModelId"] == "mA"
    assert (
        run(
            "deployment_replace_model",
            {"id": "d1", "modelId": "mA", "newModelId": "mB", "modelArtifact": str(artifacts["B"])},
        )["state"]
        == "ready"
    )
    assert run("deployment_list")["data"]["d1"]["data"]["currentModelId"] == "mB"
    pe = run("pe_status", pe={"id": "pe1", "deployments": [{"id": "d1", "modelId": "mB"}]})
    assert pe["status"] == "passing" and pe["data"]["deploymentsStatus"]["d1"]["state"] == "ready"
    relaunched = run("deployment_relaunch", {"id": "d1", "modelId": "mB", "modelArtifact": str(artifacts["B"])})
    assert relaunched["state"] == "ready"
    assert run("deployment_stop", {"id": "d1"})["state"] == "stopped"
    assert run("plugin_stop")["status"] == "passing"
    assert list(base.iterdir()) == []


def test_bad_plugin_config_names_the_key(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", {"pluginConfig": filesystem_config(tmp_path, baseDir=5)})
    result = run_runner(
        "--plugin", "filesystem", "--action", "plugin_start", "--config", str(cfg), status_file=tmp_path / "s.yaml"
    )
    assert result.status["status"] == "failing"
    assert result.status["msg"].startswith("baseDir: expected a non-empty string, got int 5")


@pytest.mark.parametrize("private", [None, {"baseDir": "/srv/models"}])
def test_missing_keys_are_a_failing_status_naming_them(tmp_path, private):
    """No silent defaults: without the documented keys nothing is written anywhere."""
    cfg = write_yaml(tmp_path / "c.yaml", {"pluginConfig": {"MLOPS_BOSUN_PRED_ENV_ID": "pe1"}, "peInfo": {"id": "pe1"}})
    args = ["--plugin", "filesystem", "--action", "plugin_start", "--config", str(cfg)]
    if private is not None:
        args += ["--private-config", str(write_yaml(tmp_path / "fs.yaml", private))]
    result = run_runner(*args, status_file=tmp_path / "s.yaml")
    assert result.returncode == 0, result.stderr
    assert (result.status["status"], result.status["state"], result.status["duration"]) == ("failing", "errored", None)
    for key in ("deploymentDirPrefix", "deploymentInfoFile", "deploymentPredictionBaseUrl"):
        assert key in result.status["msg"]
    assert ("baseDir" in result.status["msg"]) is (private is None)


def test_replacing_the_model_of_a_deployment_never_started_fails_and_creates_nothing(base, artifacts):
    replaced = plugin(base).invoke("deployment_replace_model", di(model="B", artifact=artifacts["B"]))
    assert (replaced.status, replaced.state) == (ActionStatus.ERROR, DeploymentState.ERROR)
    assert "not running" in replaced.msg and list(base.iterdir()) == []


def test_pe_status_warns_only_for_a_present_deployment_it_cannot_serve(base, artifacts):
    p = plugin(base, pe_deployments=["d1", "absent"])
    p.invoke("deployment_start", di(artifact=artifacts["A"]))
    assert p.invoke("pe_status").status == ActionStatus.OK
    (base / "deployment_d1" / "config.yml").unlink()
    pe = p.invoke("pe_status")
    assert pe.status == ActionStatus.WARN and "d1" in pe.msg and "absent" not in pe.msg

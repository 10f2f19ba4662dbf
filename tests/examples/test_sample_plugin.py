"""examples/sample_plugin runs unchanged under our runner, as the documentation shows."""

from __future__ import annotations

import json

import yaml
from tests.plugin.helpers import action_args, run_runner, write_yaml


def test_sample_plugin_documented_flow(repo_root, tmp_path):
    sample = repo_root / "examples" / "sample_plugin"
    inventory = tmp_path / "inventory.json"
    private = write_yaml(tmp_path / "sample_plugin_config.yaml", {"inventory_file": str(inventory), "max_models": 5})
    config = yaml.safe_load((sample / "sample_configs" / "action_config_deployment_1_model_A.yaml").read_text())
    artifact = tmp_path / "model-A.txt"
    artifact.write_text("model A")
    config["deploymentInfo"]["modelArtifact"] = str(artifact)
    start_cfg = write_yaml(tmp_path / "start.yaml", config)

    # bosun's documented invocation: a path without .py, relative to the working directory.
    started = run_runner(
        "--plugin",
        "examples/sample_plugin/sample_plugin",
        "--config",
        str(start_cfg),
        "--private-config",
        str(private),
        "--action",
        "deployment_start",
        "--show-status",
        status_file=tmp_path / "status.yaml",
        cwd=repo_root,
    )
    assert started.status["status"] == "passing" and started.status["state"] == "ready"
    assert "predictionUrl" in started.stdout
    assert json.loads(inventory.read_text()) == {"deployment-1": "model-A"}

    pe = run_runner(
        *action_args(
            str(sample / "sample_plugin.py"),
            "pe_status",
            sample / "sample_configs" / "action_config_pe_status_only.yaml",
            private,
        ),
        status_file=tmp_path / "pe.yaml",
    )
    statuses = pe.status["data"]["deploymentsStatus"]
    assert statuses["deployment-1"]["state"] == "ready" and statuses["deployment-2"]["state"] == "stopped"

    stopped = run_runner(
        *action_args(str(sample / "sample_plugin.py"), "deployment_stop", start_cfg, private),
        status_file=tmp_path / "stop.yaml",
    )
    assert stopped.status["state"] == "stopped" and json.loads(inventory.read_text()) == {}

"""`deckhand env|deploy|deployments|events|tokens` against a real control plane on loopback,
with a stand-in agent thread that reports what the control plane asks for."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.cli.helpers import StandInAgent, as_json

from deckhand.server.testing import ThreadedServer


def test_env_create_list_show(cli) -> None:  # type: ignore[no-untyped-def]
    created = as_json(cli("env", "create", "edge", "--platform", "test", "--kv", "replicas=2",
                        "--plugin-config", "launch_time_sec=0", "-o", "json"))  # fmt: skip
    assert created["plugin"] == "test"
    assert created["keyValueConfig"] == {"replicas": 2}
    assert created["pluginConfig"] == {"launch_time_sec": 0}
    listed = as_json(cli("env", "list", "--output", "json"))
    assert [e["name"] for e in listed] == ["edge"]
    table = cli("env", "list").stdout
    assert "edge" in table and "test" in table
    shown = cli("env", "show", "edge").stdout
    assert created["id"] in shown and "replicas" in shown
    assert as_json(cli("env", "show", "edge", "-o", "json"))["deployments"] == []


def test_bad_input_and_conflicts_exit_non_zero(cli) -> None:  # type: ignore[no-untyped-def]
    cli("env", "create", "edge", "--platform", "test")
    again = cli("env", "create", "edge", "--platform", "test", ok=False)
    assert again.exit_code == 1 and "exists" in again.stderr
    custom = cli("env", "create", "own", "--platform", "custom", ok=False)
    assert custom.exit_code == 1 and "pluginConfig.command" in custom.stderr
    bad_platform = cli("env", "create", "x", "--platform", "mainframe", ok=False)
    assert bad_platform.exit_code == 2 and "--platform" in bad_platform.stderr
    bad_kv = cli("env", "create", "x", "--platform", "test", "--kv", "novalue", ok=False)
    assert bad_kv.exit_code == 2 and "KEY=VALUE" in bad_kv.stderr
    missing = cli("deployments", "show", "nope", ok=False)
    assert missing.exit_code == 1 and "no deployment" in missing.stderr


def test_missing_or_bad_token(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("DECKHAND_TOKEN")
    result = cli("env", "list", ok=False)
    assert result.exit_code == 1 and "DECKHAND_TOKEN" in result.stderr
    result = cli("env", "list", "--token", "dh_wrong", ok=False)
    assert result.exit_code == 1 and "401" in result.stderr


def test_deploy_wait_prints_the_prediction_url(
    cli,
    server: ThreadedServer,
    demo_package: Path,  # type: ignore[no-untyped-def]
) -> None:
    env = as_json(cli("env", "create", "edge", "--platform", "test", "-o", "json"))
    with StandInAgent(server.url, env["id"]):
        result = cli("deploy", str(demo_package), "--env", "edge", "--name", "iris",
                     "--kv", "threshold=0.5", "--wait", "--timeout", "30")  # fmt: skip
    assert "uploading" in result.stderr  # the upload progress bar
    assert "is ready: http://127.0.0.1:9/deployments/" in result.stdout
    (dep,) = as_json(cli("deployments", "list", "-o", "json"))
    assert dep["observed"]["state"] == "ready" and dep["keyValueConfig"] == {"threshold": 0.5}
    table = cli("deployments", "list").stdout
    assert "iris" in table and "ready" in table


def test_deploy_wait_reports_an_errored_deployment(
    cli,
    server: ThreadedServer,
    demo_package: Path,  # type: ignore[no-untyped-def]
) -> None:
    env = as_json(cli("env", "create", "edge", "--platform", "test", "-o", "json"))
    with StandInAgent(server.url, env["id"], state="errored", message="image pull failed"):
        result = cli("deploy", str(demo_package), "--env", "edge", "--name", "iris",
                     "--wait", "--timeout", "30", ok=False)  # fmt: skip
    assert result.exit_code == 1
    assert "errored: image pull failed" in result.stderr


def test_deploy_wait_times_out_with_a_clear_message(
    cli,
    demo_package: Path,  # type: ignore[no-untyped-def]
) -> None:
    cli("env", "create", "edge", "--platform", "test")
    result = cli("deploy", str(demo_package), "--env", "edge", "--name", "iris",
                 "--wait", "--timeout", "2", ok=False)  # fmt: skip
    assert result.exit_code == 1
    assert "timed out after 2 s" in result.stderr and "agent" in result.stderr


def test_deployment_lifecycle_and_events(
    cli,
    server: ThreadedServer,
    demo_package: Path,  # type: ignore[no-untyped-def]
) -> None:
    cli("env", "create", "edge", "--platform", "test")
    dep = as_json(cli("deploy", str(demo_package), "--env", "edge", "--name", "iris", "-o", "json"))
    dep_id = dep["id"]
    assert as_json(cli("deployments", "deactivate", dep_id, "-o", "json"))["active"] is False
    assert as_json(cli("deployments", "activate", "iris", "-o", "json"))["active"] is True
    # replace with the same file uploaded again: a new package id
    replaced = as_json(cli("deployments", "replace", dep_id, str(demo_package), "-o", "json"))
    assert replaced["modelPackageId"] != dep["modelPackageId"]
    # replace by package id (no upload)
    back = as_json(cli("deployments", "replace", dep_id, dep["modelPackageId"], "-o", "json"))
    assert back["modelPackageId"] == dep["modelPackageId"]
    shown = cli("deployments", "show", dep_id).stdout
    assert "not reported yet" in shown
    events = as_json(cli("events", "--deployment", dep_id, "-o", "json"))
    actions = [e["action"] for e in events]
    assert actions[:4] == ["deployment.replaceModel", "deployment.replaceModel",
                           "deployment.activate", "deployment.deactivate"]  # fmt: skip
    assert "deployment.create" in cli("events", "--env", "edge").stdout
    cli("deployments", "delete", dep_id)
    assert as_json(cli("deployments", "list", "-o", "json")) == []


def test_tokens_create_list_delete(cli, server: ThreadedServer) -> None:  # type: ignore[no-untyped-def]
    cli("env", "create", "edge", "--platform", "test")
    created = cli("tokens", "create", "edge-agent", "--role", "agent", "--env", "edge")
    secret = created.stdout.strip()
    assert secret.startswith("dh_")
    listed = as_json(cli("tokens", "list", "-o", "json"))
    assert {t["name"] for t in listed} == {"bootstrap-admin", "edge-agent"}
    assert secret not in cli("tokens", "list").stdout
    agent_view = cli("env", "list", "--token", secret, "-o", "json")
    assert [e["name"] for e in as_json(agent_view)] == ["edge"]
    cli("tokens", "delete", "edge-agent")
    assert cli("env", "list", "--token", secret, ok=False).exit_code == 1

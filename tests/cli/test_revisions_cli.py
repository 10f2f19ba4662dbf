"""`deckhand deployments replace --reason/--note/--force`, `history` and `rollback` against
a real control plane on loopback (the fixtures of test_control_plane_cli)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import StandInAgent, as_json

from deckhand.server.testing import ThreadedServer


def test_replace_history_and_rollback(cli, demo_package: Path, second_package: Path) -> None:  # type: ignore[no-untyped-def]
    cli("env", "create", "edge", "--platform", "test")
    dep = as_json(cli("deploy", str(demo_package), "--env", "edge", "--name", "iris", "-o", "json"))
    first = dep["modelPackageId"]
    cli("deployments", "replace", "iris", str(second_package), "--reason", "data_drift", "--note", "drift on petals")

    table = cli("deployments", "history", "iris").stdout
    assert "model revisions of deployment iris" in table
    assert "data_drift" in table and "drift on petals" in table and "(created)" in table
    history = as_json(cli("deployments", "history", "iris", "-o", "json"))
    assert [(r["number"], r["current"]) for r in history] == [(2, True), (1, False)]

    back = cli("deployments", "rollback", "iris").stdout
    assert f"to revision 1: revision 3 runs model package demo-multiclass ({first})" in back
    assert as_json(cli("deployments", "show", "iris", "-o", "json"))["modelPackageId"] == first
    again = cli("deployments", "rollback", "iris", "--to", "1").stdout
    assert "already runs the package of revision 1" in again and "nothing to do" in again
    nothing = cli("deployments", "rollback", "iris", ok=False)
    assert nothing.exit_code == 1 and "no earlier revision" in nothing.stderr
    moved = as_json(cli("deployments", "rollback", "iris", "--to", "2", "--reason", "accuracy", "-o", "json"))
    assert moved["changed"] is True and moved["revision"]["number"] == 4 and moved["revision"]["rollbackTo"] == 2


def test_an_incompatible_replace_lists_the_differences_and_force_goes_through(  # type: ignore[no-untyped-def]
    cli, demo_package: Path, binary_package: Path
) -> None:
    cli("env", "create", "edge", "--platform", "test")
    cli("deploy", str(demo_package), "--env", "edge", "--name", "iris")
    refused = cli("deployments", "replace", "iris", str(binary_package), ok=False)
    assert refused.exit_code == 1
    error = refused.stderr[refused.stderr.index("error:") :]  # after the upload's progress bar
    lines = error.splitlines()
    assert "not compatible" in lines[0]
    assert any(line.strip().startswith("targetType: the current model is multiclass") for line in lines)
    assert any(line.strip().startswith("classLabels:") for line in lines)
    assert sum(line.strip().startswith("features:") for line in lines) == 2
    assert "pass --force" in lines[-1]
    assert len(as_json(cli("deployments", "history", "iris", "-o", "json"))) == 1

    forced = as_json(cli("deployments", "replace", "iris", str(binary_package), "--force", "-o", "json"))
    assert forced["revision"] == 2
    assert len(as_json(cli("deployments", "history", "iris", "-o", "json"))) == 2


def test_bad_reason_is_a_usage_error(cli, demo_package: Path) -> None:  # type: ignore[no-untyped-def]
    cli("env", "create", "edge", "--platform", "test")
    cli("deploy", str(demo_package), "--env", "edge", "--name", "iris")
    bad = cli("deployments", "replace", "iris", str(demo_package), "--reason", "vibes", ok=False)
    assert bad.exit_code == 2 and "--reason" in bad.stderr and "scheduled_refresh" in bad.stderr
    assert len(as_json(cli("deployments", "history", "iris", "-o", "json"))) == 1


def test_rollback_wait_waits_for_the_earlier_model(  # type: ignore[no-untyped-def]
    cli, server: ThreadedServer, demo_package: Path, second_package: Path
) -> None:
    env = as_json(cli("env", "create", "edge", "--platform", "test", "-o", "json"))
    with StandInAgent(server.url, env["id"]):
        dep = as_json(cli("deploy", str(demo_package), "--env", "edge", "--name", "iris", "--wait", "-o", "json"))
        cli("deployments", "replace", "iris", str(second_package), "--wait", "--timeout", "30")
        result = cli("deployments", "rollback", "iris", "--wait", "--timeout", "30")
    assert "and is ready" in result.stdout
    shown = as_json(cli("deployments", "show", "iris", "-o", "json"))
    assert shown["observed"]["modelId"] == dep["modelPackageId"] == shown["modelPackageId"]

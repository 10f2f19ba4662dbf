"""`deckhand deployments replace --canary ...`, `rollout`, `promote`, `abort` and the challenger
commands, against a real control plane on loopback; and the parsing of their durations and
shares (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from tests.cli.helpers import StandInAgent, as_json

from deckhand.cli.rollout_options import canary_body, parse_duration, parse_share
from deckhand.server.testing import ThreadedServer

NO_FLAGS = {"step": 10, "interval": "5m", "max_error_rate": None, "max_p99_ms": None, "max_psi": None,
            "min_requests": None, "sticky_header": None, "sticky_field": None}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("45", 45), ("1.5m", 90), ("2M", 120)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "0s", "500ms", "-1m", "1.5s"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="30s|at least 1"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "share"), [("1%", 0.01), ("0.01", 0.01), ("7%", 0.07), ("100%", 1.0), ("0", 0.0)])
def test_shares(text: str, share: float) -> None:
    assert parse_share(text, "--max-error-rate") == share


@pytest.mark.parametrize("text", ["1.5", "150%", "a%", "-1%"])
def test_bad_shares(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_share(text, "--max-error-rate")


def test_the_canary_body() -> None:
    assert canary_body(None, **NO_FLAGS) is None
    flags = {**NO_FLAGS, "interval": "30s", "max_error_rate": "1%", "min_requests": 20, "sticky_field": "customer_id"}
    assert canary_body(10, **flags) == {
        "percent": 10, "step": 10, "intervalSeconds": 30,
        "gates": {"maxErrorRate": 0.01, "minRequests": 20}, "sticky": {"field": "customer_id"},
    }  # fmt: skip
    with pytest.raises(typer.BadParameter, match="add --canary"):
        canary_body(None, **{**NO_FLAGS, "max_psi": 0.2})
    with pytest.raises(typer.BadParameter, match="one of --sticky-header and --sticky-field"):
        canary_body(10, **{**NO_FLAGS, "sticky_header": "x-a", "sticky_field": "b"})


def test_a_canary_from_the_cli(cli, server: ThreadedServer, demo_package: Path, second_package: Path) -> None:  # type: ignore[no-untyped-def]
    env = as_json(cli("env", "create", "edge", "--platform", "test", "--monitoring", "-o", "json"))
    dep = as_json(cli("deploy", str(demo_package), "--env", "edge", "--name", "iris", "-o", "json"))
    agent = StandInAgent(server.url, env["id"])
    agent.start()
    try:
        started = as_json(cli(
            "deployments", "replace", "iris", str(second_package), "--canary", "10", "--step", "30",
            "--interval", "30s", "--max-error-rate", "1%", "--max-p99-ms", "50", "--min-requests", "20",
            "--sticky-header", "X-Customer-ID", "--reason", "accuracy", "--wait", "--timeout", "30", "-o", "json",
        ))  # fmt: skip
    finally:
        agent.stopping.set()
        agent.join(timeout=5)
    assert started["modelPackageId"] == dep["modelPackageId"] and started["rollout"]["percent"] == 10
    assert started["observed"]["modelId"] == started["servedModelId"]  # --wait waited for the mix

    rollout = as_json(cli("deployments", "rollout", "iris", "-o", "json"))
    assert (rollout["state"], rollout["step"], rollout["intervalSeconds"]) == ("running", 30, 30)
    assert rollout["gates"] == {"maxErrorRate": 0.01, "maxP99Ms": 50.0, "minRequests": 20}
    assert rollout["sticky"] == {"header": "x-customer-id"}
    table = cli("deployments", "rollout", "iris").stdout
    assert "canary of deployment iris" in table and "gate maxErrorRate" in table and "x-customer-id" in table

    refused = cli("deployments", "replace", "iris", str(demo_package), ok=False)
    assert refused.exit_code == 1 and "promote it" in refused.stderr
    promoted = cli("deployments", "promote", "iris").stdout
    assert "promoted the canary: deployment iris" in promoted and rollout["modelPackageId"] in promoted
    nothing = cli("deployments", "abort", "iris", ok=False)
    assert nothing.exit_code == 1 and "no running canary" in nothing.stderr


def test_canary_flags_without_canary_are_refused(cli, demo_package: Path) -> None:  # type: ignore[no-untyped-def]
    cli("env", "create", "edge", "--platform", "test")
    cli("deploy", str(demo_package), "--env", "edge", "--name", "iris")
    result = cli("deployments", "replace", "iris", "x", "--max-psi", "0.2", ok=False)
    assert result.exit_code == 2 and "add --canary" in result.output + result.stderr
    result = cli("deployments", "replace", "iris", "x", "--canary", "10", "--interval", "soon", ok=False)
    assert result.exit_code == 2 and "30s, 5m or 1h" in result.output + result.stderr


def test_challengers_from_the_cli(cli, demo_package: Path, second_package: Path) -> None:  # type: ignore[no-untyped-def]
    cli("env", "create", "edge", "--platform", "test")
    cli("deploy", str(demo_package), "--env", "edge", "--name", "iris")
    added = cli("deployments", "challenger-add", "iris", str(second_package)).stdout
    assert "added the challenger" in added and "serves mix-" in added
    (challenger,) = as_json(cli("deployments", "challengers", "iris", "-o", "json"))
    listed = cli("deployments", "challengers", "iris").stdout
    assert "iris-v2" in listed and "copies of 100 % of requests" in listed
    shared = cli("deployments", "challenger-copies", "iris", "12.5").stdout
    assert "challengers get copies of 12.5 % of requests: deployment iris" in shared and "serves mix-" in shared
    assert "copies of 12.5 % of requests" in cli("deployments", "challengers", "iris").stdout
    for bad, words in (("0", "must be over 0"), ("101", "less than or equal to 100")):  # said before any call
        refused = cli("deployments", "challenger-copies", "iris", bad, ok=False)
        assert refused.exit_code == 2 and "'percent'" in refused.stderr and words in refused.stderr, refused.stderr
    package_id = challenger["modelPackageId"]
    promoted = cli("deployments", "challenger-promote", "iris", package_id, "--reason", "accuracy").stdout
    assert "promoted the challenger: deployment iris" in promoted and package_id in promoted
    assert as_json(cli("deployments", "challengers", "iris", "-o", "json")) == []
    cli("deployments", "challenger-add", "iris", str(demo_package))
    (again,) = as_json(cli("deployments", "challengers", "iris", "-o", "json"))
    assert "removed the challenger" in cli("deployments", "challenger-remove", "iris", again["modelPackageId"]).stdout
    missing = cli("deployments", "challenger-remove", "iris", again["modelPackageId"], ok=False)
    assert missing.exit_code == 1 and "not a challenger" in missing.stderr

"""`deckhand server` as a real process on loopback, on SQLite and on a real PostgreSQL:
the whole API through the client (model history included), bad tokens and inputs
refused, state kept across a restart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deckhand.client import ControlPlaneClient, ControlPlaneError
from deckhand.server.testing import ServerProcess

pytestmark = pytest.mark.slow


def _exercise_and_restart(tmp_path: Path, demo_package: Path, database_url: str | None) -> None:
    admin = "dh_e2e-admin-token-abcdefghijklmnop"
    server = ServerProcess(tmp_path / "data", bootstrap_token=admin, database_url=database_url)
    with server:
        client = ControlPlaneClient(server.url, admin)
        assert client.health()["database"] == ("postgresql" if database_url else "sqlite")
        package = client.upload_package(demo_package)
        env = client.create_environment(name="e2e", platform="test", keyValueConfig={"tier": "gold"})
        dep = client.create_deployment("iris", "e2e", package["id"], key_value_config={"a": 1})
        agent_token = client.create_token("agent-e2e", "agent", [env["id"]])["token"]
        agent = ControlPlaneClient(server.url, agent_token)
        state = agent.desired_state(env["id"])
        assert [d["id"] for d in state["deployments"]] == [dep["id"]]
        agent.report_status(
            env["id"],
            {"environment": {"status": "passing", "message": "fine"},
             "deployments": [{"id": dep["id"], "state": "ready", "modelId": package["id"],
                              "predictionUrl": "http://127.0.0.1:1/predictions"}]},
        )  # fmt: skip
        agent.post_events(env["id"], [{"deploymentId": dep["id"], "action": "deployment_start",
                                       "result": "passing", "durationSeconds": 0.5}])  # fmt: skip

        # model history: a replacement and a rollback are revisions 2 and 3
        copy = client.upload_package(demo_package)  # same file, another package id
        client.replace_model(dep["id"], copy["id"], reason="errors", note="e2e")
        back = client.rollback(dep["id"])
        assert back["changed"] and back["revision"]["modelPackageId"] == package["id"]

        # bad tokens and bad inputs are refused
        for token in (None, "dh_not-a-real-token"):
            with pytest.raises(ControlPlaneError) as err:
                ControlPlaneClient(server.url, token).list_environments()
            assert err.value.status_code == 401
        with pytest.raises(ControlPlaneError) as err:
            agent.create_environment(name="sneaky", platform="test")
        assert err.value.status_code == 403
        with pytest.raises(ControlPlaneError) as err:
            client.create_environment(name="bad", platform="test", pluginConfig="yes")
        assert err.value.status_code == 422 and "pluginConfig" in err.value.message
        with pytest.raises(ControlPlaneError) as err:
            client.create_deployment("iris", "e2e", package["id"])
        assert err.value.status_code == 409
        revision = client.get_environment("e2e")["revision"]

    with server.start():  # same data directory and database: everything is still there
        client = ControlPlaneClient(server.url, admin)
        assert client.get_environment("e2e")["keyValueConfig"] == {"tier": "gold"}
        assert client.get_environment("e2e")["revision"] == revision
        again = client.get_deployment(dep["id"])
        assert again["observed"]["state"] == "ready"
        assert again["keyValueConfig"] == {"a": 1}
        actions = [e["action"] for e in client.list_events(environment_id=env["id"])]
        assert "deployment_start" in actions and "deployment.create" in actions
        history = [(r["number"], r["reason"], r["rollbackTo"]) for r in client.list_revisions(dep["id"])]
        assert history == [(3, "other", 1), (2, "errors", None), (1, None, None)]
        agent = ControlPlaneClient(server.url, agent_token)  # tokens survive too
        assert agent.desired_state(env["id"])["revision"] == revision
        copy = agent.download_package(package["id"], tmp_path / "copy.dhpkg")
        assert copy.read_bytes() == demo_package.read_bytes()
        assert "bootstrap" not in server.output().split("control plane on")[-1]


def test_sqlite_end_to_end_and_restart(tmp_path: Path, demo_package: Path) -> None:
    _exercise_and_restart(tmp_path, demo_package, None)


@pytest.mark.postgres
def test_postgres_end_to_end_and_restart(tmp_path: Path, demo_package: Path, postgres_url: str) -> None:
    _exercise_and_restart(tmp_path, demo_package, postgres_url)


def test_first_start_prints_a_working_admin_token_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    with server:
        first = server.output()
        tokens = re.findall(r"\bdh_[A-Za-z0-9_-]{20,}", first)
        assert len(tokens) == 1, first
        assert ControlPlaneClient(server.url, tokens[0]).list_environments() == []
    with server.start():
        assert re.findall(r"\bdh_[A-Za-z0-9_-]{20,}", server.output()) == tokens  # not again


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    from deckhand.testing import GiveUp, free_port

    server = ServerProcess(tmp_path / "data", database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    with pytest.raises(GiveUp, match="exited"):
        server.start(timeout=60)
    assert "cannot open the database" in server.output()
    assert "Traceback" not in server.output()

"""The agent against a real control plane, both as real processes on loopback (SQLite and
a real PostgreSQL): the deployment life cycle with predictions, replacement under load with
zero failed requests, SIGKILL mid-action, a control-plane restart, a hung plugin, the
subprocess `command` path with the documented-interface sample plugin, and bad tokens."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deckhand.agent.testing import AgentProcess, processes_mentioning, write_agent_config
from deckhand.client import ControlPlaneClient
from deckhand.packages.demo import sample_rows
from deckhand.server.testing import ServerProcess
from deckhand.testing import wait_until

pytestmark = pytest.mark.slow

ADMIN = "dh_agent-e2e-admin-token-0123456789"
REPO = Path(__file__).resolve().parents[2]
ROWS = sample_rows(2)


def leftovers(tmp_path: Path) -> list[str]:
    """Processes the agent started (its work dir is in their command line) still running."""
    found = []
    for pid in processes_mentioning(str(tmp_path / "agent")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            found.append(f"{pid}: {cmdline}")
        except OSError:
            pass  # exited meanwhile
    return found


def predict(url: str) -> httpx.Response:
    return httpx.post(url, json=ROWS, timeout=10)


@pytest.fixture
def stop_leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever the test started through the agent (prediction servers, runners) is stopped
    at the end, even after a SIGKILL left it orphaned; the test then checks none was left."""
    yield
    import os
    import signal

    for pid in processes_mentioning(str(tmp_path)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def control_plane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    server = ServerProcess(tmp_path / "cp", bootstrap_token=ADMIN, database_url=database_url)
    with server:
        yield server


@pytest.fixture
def sqlite_control_plane(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "cp", bootstrap_token=ADMIN) as server:
        yield server


def start_agent(tmp_path: Path, server: ServerProcess, env_id: str, token: str, **settings: Any) -> AgentProcess:
    work = tmp_path / "agent"
    work.mkdir(parents=True, exist_ok=True)
    environments = settings.pop("environments", None) or [{"id": env_id}]
    config = write_agent_config(
        tmp_path / "agent.yaml", url=server.url, token=token, work_dir=work, environments=environments, **settings
    )
    return AgentProcess(config, work).start()


def observed(client: ControlPlaneClient, dep_id: str) -> dict[str, Any]:
    return client.get_deployment(dep_id).get("observed") or {}


def ready_url(client: ControlPlaneClient, dep_id: str, model_id: str | None = None) -> str | None:
    seen = observed(client, dep_id)
    if seen.get("state") == "ready" and seen.get("predictionUrl") and (model_id is None or seen["modelId"] == model_id):
        return seen["predictionUrl"]
    return None


class PredictionLoop:
    """Posts rows to `url` in a thread, back to back, until the block ends; counts what it
    sent and keeps every answer that was not a 200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                try:
                    response = http.post(self.url, json=ROWS)
                except httpx.TransportError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                else:
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text[:200]}")
                self.sent += 1

    def wait_for(self, more: int, what: str) -> None:
        """Until `more` further requests have been sent."""
        target = self.sent + more
        wait_until(lambda: self.sent >= target, 30, 0.01, what=what)

    def __enter__(self) -> PredictionLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def serving_model(prediction_url: str) -> str | None:
    """The model id the prediction server itself says it serves (its `info` route)."""
    info = httpx.get(prediction_url.rsplit("/predictions", 1)[0] + "/info", timeout=10)
    info.raise_for_status()
    model_id: str | None = info.json().get("modelId")
    return model_id


def test_deployment_life_cycle_through_the_agent(
    tmp_path: Path,
    control_plane: ServerProcess,
    demo_package: Path,
    second_package: Path,
    stop_leftovers: None,
) -> None:
    admin = ControlPlaneClient(control_plane.url, ADMIN)
    first, second = admin.upload_package(demo_package), admin.upload_package(second_package)
    env = admin.create_environment(name="local-e2e", platform="local")
    token = admin.create_token("agent-local-e2e", "agent", [env["id"]])["token"]
    agent = start_agent(tmp_path, control_plane, env["id"], token)
    try:
        agent.wait_for_log("started revision=", 60)

        created = time.monotonic()
        dep = admin.create_deployment("iris", env["id"], first["id"])
        url = wait_until(lambda: ready_url(admin, dep["id"]), 60, what="deployment ready")
        assert predict(url).status_code == 200
        print(f"created -> answering: {time.monotonic() - created:.2f} s")

        # Replace the model while a request loop runs: not one request may fail.
        with PredictionLoop(url) as load:
            load.wait_for(3, "requests flowing before the replacement")
            admin.replace_model(dep["id"], second["id"])
            wait_until(lambda: ready_url(admin, dep["id"], second["id"]), 60, what="new model ready")
            load.wait_for(3, "requests to the new model")
        assert load.sent > 20 and load.failures == [], (load.sent, load.failures[:5])

        admin.deactivate_deployment(dep["id"])
        wait_until(lambda: observed(admin, dep["id"]).get("state") == "stopped", 60, what="deactivated")
        assert predict(url).status_code == 404

        admin.activate_deployment(dep["id"])
        url = wait_until(lambda: ready_url(admin, dep["id"], second["id"]), 60, what="re-activated")
        assert predict(url).status_code == 200

        def stops() -> int:
            events = admin.list_events(environment_id=env["id"])
            return sum(1 for e in events if e["action"] == "deployment_stop" and e["result"] == "passing")

        stopped_before = stops()
        admin.delete_deployment(dep["id"])
        wait_until(lambda: stops() > stopped_before, 60, what="deleted deployment stopped by the agent")
        assert predict(url).status_code == 404
        assert admin.list_deployments(env["id"]) == []
        deployments_dir = tmp_path / "agent"
        assert not [p for p in deployments_dir.rglob("config.yml") if "iris" in str(p) or dep["id"] in str(p)]

        actions = [(e["action"], e["result"]) for e in admin.list_events(environment_id=env["id"])]
        for action in ("plugin_start", "deployment_start", "deployment_replace_model", "deployment_stop"):
            assert (action, "passing") in actions, actions
        assert token not in agent.output()
    finally:
        assert agent.stop() == 0, agent.output()[-3000:]
    assert leftovers(tmp_path) == [], "the agent left processes behind after a clean stop"


def test_agent_killed_mid_action_converges_after_restart(
    tmp_path: Path, sqlite_control_plane: ServerProcess, demo_package: Path, stop_leftovers: None
) -> None:
    admin = ControlPlaneClient(sqlite_control_plane.url, ADMIN)
    package = admin.upload_package(demo_package)
    env = admin.create_environment(name="crashy", platform="local")
    token = admin.create_token("agent-crashy", "agent", [env["id"]])["token"]
    agent = start_agent(tmp_path, sqlite_control_plane, env["id"], token, parallelism=2)
    agent.wait_for_log("started revision=", 60)
    deployments = [admin.create_deployment(f"d{i}", env["id"], package["id"])["id"] for i in range(6)]
    agent.wait_for_log("action=deployment_start", 60)
    agent.kill()  # in the middle of the starts

    restarted = AgentProcess(agent.config, agent.work_dir).start()
    try:
        for dep_id in deployments:
            url = wait_until(lambda dep_id=dep_id: ready_url(admin, dep_id), 90, what=f"{dep_id} ready after restart")
            assert predict(url).status_code == 200
        base = next((tmp_path / "agent").rglob("deployments"))
        names = sorted(p.name for p in base.iterdir())
        assert names == sorted(deployments), f"half-done work left in {base}: {names}"
        servers = [pid for pid in processes_mentioning(str(base)) if pid != restarted.pid]
        assert len(servers) == 1, f"expected one prediction server over {base}, found {servers}"
    finally:
        assert restarted.stop() == 0, restarted.output()[-3000:]
    assert leftovers(tmp_path) == []


def test_control_plane_restart_while_the_agent_runs(
    tmp_path: Path, sqlite_control_plane: ServerProcess, demo_package: Path, stop_leftovers: None
) -> None:
    server = sqlite_control_plane
    admin = ControlPlaneClient(server.url, ADMIN)
    package = admin.upload_package(demo_package)
    env = admin.create_environment(name="restart", platform="local")
    token = admin.create_token("agent-restart", "agent", [env["id"]])["token"]
    with start_agent(tmp_path, server, env["id"], token) as agent:
        first = admin.create_deployment("before", env["id"], package["id"])["id"]
        url = wait_until(lambda: ready_url(admin, first), 60, what="first deployment ready")

        failed = agent.output().count("desired state fetch failed")
        server.stop()
        wait_until(
            lambda: agent.output().count("desired state fetch failed") > failed,
            60,
            what="the agent retrying the stopped control plane",
        )
        assert predict(url).status_code == 200  # and it keeps serving meanwhile
        server.start()

        second = admin.create_deployment("after", env["id"], package["id"])["id"]
        url2 = wait_until(lambda: ready_url(admin, second), 60, what="deployment created after the restart ready")
        assert predict(url2).status_code == 200
        assert ready_url(admin, first) == url
        assert agent.alive()
        assert "desired state fetch failed" in agent.output()


def test_hung_plugin_is_killed_at_its_timeout_and_reported(
    tmp_path: Path, sqlite_control_plane: ServerProcess, demo_package: Path, stop_leftovers: None
) -> None:
    admin = ControlPlaneClient(sqlite_control_plane.url, ADMIN)
    package = admin.upload_package(demo_package)
    env = admin.create_environment(
        name="hangs", platform="custom", pluginConfig={"command": "bosun-plugin-runner --plugin test"}
    )
    token = admin.create_token("agent-hangs", "agent", [env["id"]])["token"]
    private = tmp_path / "hang.yaml"
    private.write_text(yaml.safe_dump({"launch_time_sec": 600, "tmp_dir": str(tmp_path / "state")}))
    command = f"bosun-plugin-runner --plugin test --private-config {private}"
    with start_agent(
        tmp_path,
        sqlite_control_plane,
        env["id"],
        token,
        environments=[{"id": env["id"], "command": command}],
        actionTimeoutSeconds=3,
    ) as agent:
        dep = admin.create_deployment("slow", env["id"], package["id"])["id"]

        def timed_out() -> list[dict[str, Any]]:
            return [
                e
                for e in admin.list_events(environment_id=env["id"])
                if e["action"] == "deployment_start" and "did not finish within 3 s" in (e.get("message") or "")
            ]

        event = wait_until(timed_out, 60, what="timeout event")[0]
        assert event["result"] == "failing" and "plugin process killed" in event["message"]
        # the status report may trail the event, and a retry shows "launching" for a while
        wait_until(lambda: observed(admin, dep).get("state") == "errored", 30, what="deployment reported errored")
        # The runner (and its process group) is gone, not left sleeping.
        wait_until(lambda: not processes_mentioning(f"--private-config {private}"), 10, what="hung runner killed")
        assert agent.alive()


def test_subprocess_command_path_with_the_sample_plugin(
    tmp_path: Path, sqlite_control_plane: ServerProcess, demo_package: Path, stop_leftovers: None
) -> None:
    admin = ControlPlaneClient(sqlite_control_plane.url, ADMIN)
    package = admin.upload_package(demo_package)
    inventory = tmp_path / "inventory.json"
    private = tmp_path / "sample.yaml"
    private.write_text(yaml.safe_dump({"inventory_file": str(inventory), "max_models": 5}))
    plugin = REPO / "examples" / "sample_plugin" / "sample_plugin.py"
    command = f"bosun-plugin-runner --plugin {plugin} --private-config {private}"
    env = admin.create_environment(name="sample", platform="custom", pluginConfig={"command": command})
    token = admin.create_token("agent-sample", "agent", [env["id"]])["token"]
    with start_agent(
        tmp_path, sqlite_control_plane, env["id"], token, environments=[{"id": env["id"], "command": command}]
    ):
        dep = admin.create_deployment("sampled", env["id"], package["id"])["id"]
        url = wait_until(lambda: ready_url(admin, dep), 60, what="sample plugin deployment ready")
        assert url == f"http://sample.invalid/{dep}/predict"
        assert json.loads(inventory.read_text()) == {dep: package["id"]}
        admin.delete_deployment(dep)
        wait_until(lambda: json.loads(inventory.read_text()) == {}, 60, what="sample plugin stopped the deployment")


def test_bad_tokens_stop_the_agent_with_a_clear_message(
    tmp_path: Path, sqlite_control_plane: ServerProcess, stop_leftovers: None
) -> None:
    admin = ControlPlaneClient(sqlite_control_plane.url, ADMIN)
    env = admin.create_environment(name="guarded", platform="local")
    other = admin.create_environment(name="elsewhere", platform="local")
    scoped = admin.create_token("agent-elsewhere", "agent", [other["id"]])["token"]

    bad = start_agent(tmp_path / "bad", sqlite_control_plane, env["id"], "dh_not-a-real-token-123456789")
    assert bad.wait(60) == 2
    assert "401" in bad.output() and "token" in bad.output().lower()
    assert "dh_not-a-real-token-123456789" not in bad.output()
    assert "Traceback" not in bad.output()

    wrong_env = start_agent(tmp_path / "scoped", sqlite_control_plane, env["id"], scoped)
    assert wrong_env.wait(60) == 2
    # another environment looks missing to a scoped token (404, not 403): the hint names the scope
    assert "404" in wrong_env.output() and env["id"] in wrong_env.output()
    assert "agent token was created for this environment" in wrong_env.output()
    assert scoped not in wrong_env.output()


def test_replace_then_rollback_under_load_keeps_every_request(
    tmp_path: Path,
    sqlite_control_plane: ServerProcess,
    demo_package: Path,
    second_package: Path,
    stop_leftovers: None,
) -> None:
    """create (revision 1) -> replace (revision 2) -> rollback (revision 3 = revision 1's
    package), a request loop running throughout: the prediction server ends up serving
    revision 1's model and not one request fails."""
    admin = ControlPlaneClient(sqlite_control_plane.url, ADMIN)
    first, second = admin.upload_package(demo_package), admin.upload_package(second_package)
    env = admin.create_environment(name="rollback-e2e", platform="local")
    token = admin.create_token("agent-rollback-e2e", "agent", [env["id"]])["token"]
    with start_agent(tmp_path, sqlite_control_plane, env["id"], token) as agent:
        agent.wait_for_log("started revision=", 60)
        dep = admin.create_deployment("iris", env["id"], first["id"])
        url = wait_until(lambda: ready_url(admin, dep["id"]), 60, what="deployment ready")

        with PredictionLoop(url) as load:
            load.wait_for(3, "requests flowing before the replacement")
            admin.replace_model(dep["id"], second["id"], reason="scheduled_refresh", note="weekly retrain")
            wait_until(lambda: ready_url(admin, dep["id"], second["id"]), 60, what="revision 2 ready")
            wait_until(lambda: serving_model(url) == second["id"], 30, what="the server serving revision 2")
            load.wait_for(3, "requests to revision 2")

            back = admin.rollback(dep["id"], reason="accuracy", note="v2 scores worse")
            assert back["changed"] is True
            assert (back["revision"]["number"], back["revision"]["rollbackTo"]) == (3, 1)
            assert back["revision"]["modelPackageId"] == first["id"]
            wait_until(lambda: ready_url(admin, dep["id"], first["id"]), 60, what="revision 3 ready")
            wait_until(lambda: serving_model(url) == first["id"], 30, what="the server serving revision 1's model")
            load.wait_for(3, "requests after the rollback")
        print(f"replace + rollback under load: {load.sent} requests, {len(load.failures)} failed")
        assert load.sent > 20 and load.failures == [], (load.sent, load.failures[:5])

        history = admin.list_revisions(dep["id"])
        assert [(r["number"], r["modelPackageId"], r["current"]) for r in history] == [
            (3, first["id"], True), (2, second["id"], False), (1, first["id"], False)
        ]  # fmt: skip
        events = admin.list_events(deployment_id=dep["id"])
        replaces = [e for e in events if e["action"] == "deployment_replace_model" and e["result"] == "passing"]
        assert len(replaces) == 2, [(e["action"], e["result"], e["message"]) for e in events]
        rollback_event = next(e for e in events if e["action"] == "deployment.rollback")
        assert "reason accuracy: v2 scores worse" in rollback_event["message"]

"""Rollouts end to end on the local platform, every part a real process on loopback: the
control plane (its rollout controller ticking twice a second), the agent with the
filesystem plugin, the prediction server and the tracking agent carrying monitoring back.

A client loop runs through each scenario and checks every answer: its status and which
model answered it (`x-deckhand-model-id`):

- a canary that passes its gates steps up and is promoted (it becomes revision 2), then the
  deployment rolls back to revision 1 (revision 3);
- a canary that raises on some rows fails its error-rate gate and is rolled back by the
  controller, while clients get the champion's answers and no failure;
- a challenger scores copies of live requests; clients only ever get the champion's answers;
- with a sticky header, an entity meets the same model on every request.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.agent.test_control_plane_e2e import ADMIN, ready_url, start_agent

from deckhand.agent.testing import AgentProcess
from deckhand.client import ControlPlaneClient
from deckhand.packages.demo import sample_rows
from deckhand.server.testing import ServerProcess
from deckhand.testing import wait_until

pytestmark = pytest.mark.slow

MODEL_HEADER = "x-deckhand-model-id"
# Iris rows; about a third have petal_length > 5, on which the flaky package raises.
ROWS = sample_rows(200, seed=7)


class Client:
    """Posts 2-row requests to `url` back to back in a thread until the block ends; keeps
    every failure and counts which model answered."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.sent = 0
        self.failures: list[str] = []
        self.answered_by: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        picks = itertools.cycle(range(0, len(ROWS), 2))
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                start = next(picks)
                try:
                    response = http.post(self.url, json=ROWS[start : start + 2], headers=self.headers)
                except httpx.TransportError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                else:
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code} {response.text[:200]}")
                    self.answered_by[response.headers.get(MODEL_HEADER, "<none>")] += 1
                self.sent += 1

    def report(self) -> str:
        return f"{self.sent} requests, {len(self.failures)} failed, answered by {dict(self.answered_by)}"

    def __enter__(self) -> Client:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlaneClient, str]]:
    """A control plane and an agent for one monitored local environment; yields the admin
    client and the environment id."""
    root = tmp_path_factory.mktemp("rollouts")
    with ServerProcess(root / "cp", bootstrap_token=ADMIN, extra_args=["--rollout-tick-seconds", "0.5"]) as server:
        admin = ControlPlaneClient(server.url, ADMIN)
        env = admin.create_environment(name="rollouts-e2e", platform="local", monitoringEnabled=True)
        token = admin.create_token("agent-rollouts-e2e", "agent", [env["id"]])["token"]
        agent: AgentProcess
        with start_agent(root, server, env["id"], token) as agent:
            agent.wait_for_log("started revision=", 60)
            yield admin, env["id"]


@pytest.fixture(scope="module")
def packages(
    stack: tuple[ControlPlaneClient, str], demo_package: Path, second_package: Path, flaky_package: Path
) -> dict[str, str]:
    admin, _ = stack
    return {
        name: admin.upload_package(path)["id"]
        for name, path in (("v1", demo_package), ("v2", second_package), ("flaky", flaky_package))
    }


def _deploy(admin: ControlPlaneClient, env_id: str, name: str, package_id: str) -> tuple[str, str]:
    dep = admin.create_deployment(name, env_id, package_id)
    url = wait_until(lambda: ready_url(admin, dep["id"]), 60, what=f"{name} ready")
    return dep["id"], url


def _served(admin: ControlPlaneClient, dep_id: str) -> bool:
    """The agent reports the model the control plane says the deployment serves."""
    dep = admin.get_deployment(dep_id)
    seen = dep.get("observed") or {}
    return seen.get("state") == "ready" and seen.get("modelId") == dep["servedModelId"]


def _rollout_ended(admin: ControlPlaneClient, dep_id: str) -> dict[str, Any] | None:
    rollout = admin.get_rollout(dep_id)
    return rollout if rollout["state"] != "running" else None


def test_a_canary_that_passes_its_gates_is_promoted(stack, packages) -> None:
    admin, env_id = stack
    dep_id, url = _deploy(admin, env_id, "canary-good", packages["v1"])
    gates = {"maxErrorRate": 0.05, "maxP99Ms": 2000, "maxPsi": 5.0, "minRequests": 5}
    with Client(url) as client:
        admin.start_canary(
            dep_id, packages["v2"], {"percent": 30, "step": 35, "intervalSeconds": 6, "gates": gates},
            reason="scheduled_refresh", note="weekly retrain",
        )  # fmt: skip
        ended = wait_until(lambda: _rollout_ended(admin, dep_id), 180, 0.5, what="the canary's verdict")
        wait_until(lambda: _served(admin, dep_id), 60, what="the promoted model serving alone")
        after = client.sent
        wait_until(lambda: client.sent > after + 10, 30, what="requests after the promotion")
        back = admin.rollback(dep_id, revision=1, reason="accuracy", note="v2 scores worse")
        wait_until(lambda: _served(admin, dep_id), 60, what="revision 1's model serving again")
        answered_before = client.answered_by[packages["v1"]]
        wait_until(lambda: client.answered_by[packages["v1"]] > answered_before + 10, 30, what="v1 answering again")
    print(f"canary promoted: {client.report()}")
    assert ended["state"] == "promoted", ended
    assert (back["revision"]["number"], back["revision"]["modelPackageId"]) == (3, packages["v1"])
    judged = ended["lastGates"]["gates"]
    assert {gate: judged[gate]["verdict"] for gate in ("maxErrorRate", "maxP99Ms", "maxPsi")} == dict.fromkeys(
        ("maxErrorRate", "maxP99Ms", "maxPsi"), "pass"
    ), judged
    assert client.failures == [], client.failures[:5]
    assert client.answered_by[packages["v1"]] > 0 and client.answered_by[packages["v2"]] > 0
    assert set(client.answered_by) == {packages["v1"], packages["v2"]}
    revisions = [(r["number"], r["modelPackageId"], r["reason"]) for r in admin.list_revisions(dep_id)]
    assert revisions[:2] == [(3, packages["v1"], "accuracy"), (2, packages["v2"], "scheduled_refresh")]
    steps = [e for e in admin.list_events(deployment_id=dep_id) if e["action"].startswith("deployment.rollout")]
    assert any("promot" in e["action"].lower() for e in steps), [(e["action"], e["message"]) for e in steps]


def test_a_canary_that_fails_on_some_rows_is_rolled_back_and_no_client_sees_it(stack, packages) -> None:
    admin, env_id = stack
    dep_id, url = _deploy(admin, env_id, "canary-flaky", packages["v1"])
    gates = {"maxErrorRate": 0.01, "minRequests": 5}
    with Client(url) as client:
        admin.start_canary(dep_id, packages["flaky"], {"percent": 50, "step": 25, "intervalSeconds": 5, "gates": gates})
        ended = wait_until(lambda: _rollout_ended(admin, dep_id), 180, 0.5, what="the canary's verdict")
        wait_until(lambda: _served(admin, dep_id), 60, what="the champion serving alone again")
        after = client.sent
        wait_until(lambda: client.sent > after + 10, 30, what="requests after the rollback")
    print(f"canary rolled back: {client.report()}")
    assert ended["state"] == "rolled_back", ended
    assert "maxErrorRate" in ended["outcome"], ended["outcome"]
    assert client.failures == [], client.failures[:5]
    assert client.answered_by[packages["v1"]] == client.sent - client.answered_by[packages["flaky"]]
    assert admin.get_deployment(dep_id)["modelPackageId"] == packages["v1"]
    assert [r["number"] for r in admin.list_revisions(dep_id)] == [1]  # nothing was replaced
    rolled = [e for e in admin.list_events(deployment_id=dep_id) if e["action"] == "deployment.rollout.rolledBack"]
    assert len(rolled) == 1 and "maxErrorRate" in rolled[0]["message"], rolled
    flaky = admin.model_monitoring(dep_id)
    by_model = {m["modelId"]: m for m in flaky["models"]}
    assert by_model[packages["flaky"]]["systemErrors"] + by_model[packages["flaky"]]["userErrors"] > 0, by_model


def test_a_challenger_scores_copies_and_clients_only_get_the_champions_answers(stack, packages) -> None:
    admin, env_id = stack
    dep_id, url = _deploy(admin, env_id, "shadowed", packages["v1"])
    baseline = httpx.post(url, json=ROWS[:20], timeout=10).json()
    admin.add_challenger(dep_id, packages["v2"])
    wait_until(lambda: _served(admin, dep_id), 60, what="the mix with the challenger serving")
    with Client(url) as client:

        def challenger_counted() -> dict[str, Any] | None:
            models = {m["modelId"]: m for m in admin.model_monitoring(dep_id)["models"]}
            shadow = models.get(packages["v2"])
            return shadow if shadow and shadow["requests"] >= 20 and shadow.get("agreement") is not None else None

        shadow = wait_until(challenger_counted, 90, 1.0, what="the challenger's copies in monitoring")
        during = httpx.post(url, json=ROWS[:20], timeout=10)
    print(
        f"challenger: {client.sent} requests, challenger scored {shadow['requests']}, agreement {shadow['agreement']}"
    )
    assert client.failures == [], client.failures[:5]
    assert set(client.answered_by) == {packages["v1"]}
    assert during.headers[MODEL_HEADER] == packages["v1"] and during.json() == baseline
    assert shadow["shadow"] is True and 0.0 <= shadow["agreement"] <= 1.0


def test_a_copy_share_reaches_the_prediction_server_and_copies_that_share(stack, packages) -> None:
    """`challengerCopyPercent` end to end: the control plane's new mix reaches the prediction
    server through the agent, which then copies about that share of the requests to the
    challenger and counts the rest as passed over; clients get the champion's answers."""
    admin, env_id = stack
    dep_id, url = _deploy(admin, env_id, "sampled", packages["v1"])
    admin.add_challenger(dep_id, packages["v2"])
    served = admin.update_deployment(dep_id, challenger_copy_percent=25)["servedModelId"]
    wait_until(lambda: _served(admin, dep_id), 60, what="the mix with the copy share serving")
    info_url = url.rsplit("/predictions", 1)[0] + "/info"
    before = httpx.get(info_url, timeout=10).json()
    assert before["modelId"] == served and before["mix"]["challengerCopyPercent"] == 25.0
    requests = 800
    with httpx.Client(timeout=10) as http:
        for i in range(requests):
            response = http.post(url, json=ROWS[(2 * i) % len(ROWS) :][:2])
            assert response.status_code == 200 and response.headers[MODEL_HEADER] == packages["v1"], response.text

    def counted() -> dict[str, int] | None:  # every request copied or passed over, one way or another
        after = httpx.get(info_url, timeout=10).json()["mix"]["shadow"]
        delta = {key: after[key] - before["mix"]["shadow"][key] for key in after}
        return delta if sum(delta[k] for k in ("sent", "dropped", "shed", "passedOver")) == requests else None

    delta = wait_until(counted, 30, 0.2, what="every request counted by the prediction server")
    print(f"copy share 25 %: {requests} requests, {delta}")
    # 800 draws at 25 %: 200 copies, standard deviation 12.2; 5 of them either side
    assert 139 <= delta["sent"] + delta["dropped"] + delta["shed"] <= 261, delta


def test_a_sticky_header_keeps_each_entity_on_one_model(stack, packages) -> None:
    admin, env_id = stack
    dep_id, url = _deploy(admin, env_id, "sticky", packages["v1"])
    sticky = {"header": "x-customer-id"}
    admin.start_canary(dep_id, packages["v2"], {"percent": 50, "step": 10, "intervalSeconds": 3600, "sticky": sticky})
    wait_until(lambda: _served(admin, dep_id), 60, what="the canary mix serving")
    seen: dict[str, set[str]] = {}
    with httpx.Client(timeout=10) as http:
        for customer in (f"customer-{i}" for i in range(40)):
            for _ in range(5):
                response = http.post(url, json=ROWS[:2], headers={"x-customer-id": customer})
                assert response.status_code == 200, response.text
                seen.setdefault(customer, set()).add(response.headers[MODEL_HEADER])
    assert all(len(models) == 1 for models in seen.values()), seen
    split = Counter(next(iter(models)) for models in seen.values())
    assert set(split) == {packages["v1"], packages["v2"]}, split  # 40 customers at 50 %: both sides
    after_abort = admin.abort_rollout(dep_id)
    assert after_abort["rollout"] is None and after_abort["modelPackageId"] == packages["v1"]
    assert admin.get_rollout(dep_id)["state"] == "aborted"
    wait_until(lambda: _served(admin, dep_id), 60, what="the champion serving alone after the abort")
    assert httpx.post(url, json=ROWS[:2], timeout=10).headers[MODEL_HEADER] == packages["v1"]

"""A canary / challenger mix served by the Kubernetes plugin on the real test cluster
(docs/rollouts.md): the control plane names a split deployment's model `mix-...`, the
plugin's Kaniko Job downloads that id from the package artifact route and builds it into
the model image, and the pod's prediction server splits the traffic. Driven as the agent
would: start model a, replace it with the mix, check the split, the sticky header and a
failing canary through the Ingress, then replace back to model a alone and stop."""

from __future__ import annotations

import itertools
import re
import subprocess
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from tests.plugins.kubernetes.helpers import only_pods_of, wait_for
from tests.plugins.kubernetes.test_cluster_plugin import (
    info,
    leftovers,
    make_plugin,
    plugin_config,
    predict_when_routed,
    served_model,
)

from deckhand.packages.demo import sample_rows
from deckhand.plugin import ActionStatus, DeploymentState

pytestmark = pytest.mark.timeout(1500)
MODEL_HEADER = "x-deckhand-model-id"
STICKY = "x-customer-id"
ROWS = sample_rows(200, seed=7)
RAISING = [r for r in ROWS if r["petal_length"] > 5.0]  # the flaky package raises on these
HARMLESS = [r for r in ROWS if r["petal_length"] <= 5.0]
TIMINGS: dict[str, float] = {}


def post(env: Any, dep_id: str, rows: list[dict[str, float]], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"http://{env.ingress_http}/deployments/{dep_id}/predictions", json=rows, headers=headers or {}, timeout=10
    )


def answered(env: Any, dep_id: str, batches: list[list[dict[str, float]]], **kw: Any) -> tuple[Counter[str], list]:
    """Which model answered each batch, and every non-200 answer."""
    by: Counter[str] = Counter()
    failures = []
    for rows in batches:
        try:
            resp = post(env, dep_id, rows, **kw)
        except httpx.TransportError as exc:
            failures.append((type(exc).__name__, str(exc)))
            continue
        if resp.status_code != 200:
            failures.append((resp.status_code, resp.text[:200]))
        by[resp.headers.get(MODEL_HEADER, "<none>")] += 1
    return by, failures


class Traffic:
    """2-row requests back to back in a thread while a block runs (a swap): every failure kept."""

    def __init__(self, env: Any, dep_id: str) -> None:
        self.env, self.dep_id = env, dep_id
        self.sent = 0
        self.failures: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        picks = itertools.cycle(range(0, len(ROWS), 2))
        while not self._stop.is_set():
            start = next(picks)
            _, failures = answered(self.env, self.dep_id, [ROWS[start : start + 2]])
            self.failures += failures
            self.sent += 1

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def pod_logs(env: Any, namespace: str, dep_id: str) -> str:
    """The prediction server's log in the deployment's pods (said when a request failed)."""
    from deckhand.plugins.kubernetes import manifests

    proc = subprocess.run(
        ["kubectl", f"--kubeconfig={env.kubeconfig}", "-n", namespace, "logs", "--tail=60", "--prefix",
         "-l", f"deckhand.io/deployment-id={manifests.label_value(dep_id)}", "-c", manifests.CONTAINER],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return proc.stdout + proc.stderr


def replace(env: Any, p: Any, namespace: str, dep_id: str, old: str, new: str, what: str, build: bool) -> None:
    """deployment_replace_model as the agent runs it (a Kaniko build of `new`'s image when
    `build`), then until only the new model answers."""
    t0 = time.monotonic()
    result = p.invoke("deployment_replace_model", info(dep_id, old, new_model_id=new))
    TIMINGS[what] = time.monotonic() - t0
    assert result.status == ActionStatus.OK, result.msg
    assert result.state == DeploymentState.READY and result.data["currentModelId"] == new, result.data
    assert not result.data.get("oldModelInUse"), result.data
    built = re.search(r"built and pushed \S+ in (\d+) s", result.msg)
    assert bool(built) == build, result.msg
    if built:
        TIMINGS[what.replace("replace_with_", "")] = float(built.group(1))
    wait_for(f"only pods of {new}", lambda: only_pods_of(env, namespace, dep_id, new), timeout=60)
    TIMINGS[what.replace("_s", "_old_pods_gone_s")] = time.monotonic() - t0
    assert served_model(env, dep_id) == new


def test_a_canary_and_challenger_mix_served_through_the_ingress(
    real_cluster, cluster_images, control_plane, k8s_api, namespace, flaky_package
) -> None:
    env, cp = real_cluster, control_plane
    admin = cp.client
    a, b = cp.packages["a"], cp.packages["b"]
    flaky = admin.upload_package(flaky_package)["id"]
    # The Kaniko Job downloads with the namespace's api-token secret (the admin token): it
    # sees every environment; a mix downloads only while a deployment here serves it.
    environment = admin.create_environment(name=f"k8s-rollouts-{namespace}", platform="kubernetes")
    dep = admin.create_deployment("k8s-canary", environment["id"], a)
    dep_id = dep["id"]
    p = make_plugin(plugin_config(env, cluster_images, cp, namespace), [dep_id])
    try:
        assert p.invoke("plugin_start").status == ActionStatus.OK
        started = p.invoke("deployment_start", info(dep_id, a))
        assert started.status == ActionStatus.OK, started.msg
        assert predict_when_routed(env, dep_id).status_code == 200

        # 1. a canary of b at 50 %, sticky on a header: the mix built by Kaniko and rolled out
        canary = {"percent": 50, "step": 10, "intervalSeconds": 3600, "sticky": {"header": STICKY}}
        mix1 = admin.start_canary(dep_id, b, canary)["servedModelId"]
        assert mix1.startswith("mix-"), mix1
        with Traffic(env, dep_id) as during:
            replace(env, p, namespace, dep_id, a, mix1, "replace_with_kaniko_build_of_mix_s", build=True)
        print(f"\nduring the swap to {mix1}: {during.sent} requests, {len(during.failures)} failed")
        assert during.sent > 0 and during.failures == [], (during.failures[:5], pod_logs(env, namespace, dep_id))
        by, failures = answered(env, dep_id, [ROWS[i : i + 2] for i in range(0, 200, 2)])
        print(f"mix {mix1} (a, canary b 50%): 100 requests answered by {dict(by)}")
        assert failures == [], (failures[:5], pod_logs(env, namespace, dep_id))
        assert set(by) == {a, b} and min(by.values()) >= 20, by  # 50 % of 100: both well above 20
        seen: dict[str, set[str]] = {}
        for customer in (f"customer-{i}" for i in range(30)):
            by_customer, failures = answered(env, dep_id, [ROWS[:2]] * 4, headers={STICKY: customer})
            assert failures == [], failures
            seen[customer] = set(by_customer)
        assert all(len(models) == 1 for models in seen.values()), seen
        assert set(Counter(next(iter(m)) for m in seen.values())) == {a, b}, seen

        # 2. abort; a canary of the flaky package with b as a challenger: no client sees its failures
        admin.abort_rollout(dep_id)
        admin.add_challenger(dep_id, b)
        mix2 = admin.start_canary(dep_id, flaky, {"percent": 50, "step": 10, "intervalSeconds": 3600})["servedModelId"]
        assert mix2.startswith("mix-") and mix2 != mix1, (mix1, mix2)
        with Traffic(env, dep_id) as during:
            replace(env, p, namespace, dep_id, mix1, mix2, "replace_with_kaniko_build_of_flaky_mix_s", build=True)
        print(f"during the swap to {mix2}: {during.sent} requests, {len(during.failures)} failed")
        assert during.sent > 0 and during.failures == [], (during.failures[:5], pod_logs(env, namespace, dep_id))
        raising, failures = answered(env, dep_id, [[row] for row in RAISING])
        print(f"flaky mix {mix2}: {len(RAISING)} rows that make the canary raise answered by {dict(raising)}")
        assert failures == [], failures[:5]
        assert set(raising) == {a}, raising  # the champion answered every one
        harmless, failures = answered(env, dep_id, [[row] for row in HARMLESS[:60]])
        print(f"flaky mix {mix2}: 60 rows it answers, answered by {dict(harmless)}")
        assert failures == [], failures[:5]
        assert harmless[flaky] > 0 and harmless[a] > 0, harmless  # the canary does get its share
        assert b not in harmless and b not in raising  # the challenger only scores copies

        def mix_info() -> dict[str, Any] | None:
            body = httpx.get(f"http://{env.ingress_http}/deployments/{dep_id}/info", timeout=10).json()["mix"]
            return body if body["shadow"]["scored"] > 0 else None

        described = wait_for("the challenger scoring copies", mix_info, timeout=30)
        print(f"flaky mix /info: {described}")
        roles = [(m["modelId"], m["role"], m["percent"]) for m in described["members"]]
        assert roles == [(a, "champion", 50), (flaky, "canary", 50), (b, "challenger", 0)], roles

        # 3. abort (the promote/abort path): model a alone again, its image already built
        admin.abort_rollout(dep_id)
        admin.remove_challenger(dep_id, b)
        assert admin.get_deployment(dep_id)["servedModelId"] == a
        with Traffic(env, dep_id) as during:
            replace(env, p, namespace, dep_id, mix2, a, "replace_back_to_a_s", build=False)
        print(f"during the swap back to {a}: {during.sent} requests, {len(during.failures)} failed")
        assert during.sent > 0 and during.failures == [], during.failures[:5]
        alone, failures = answered(env, dep_id, [ROWS[i : i + 2] for i in range(0, 40, 2)])
        assert failures == [] and set(alone) == {a}, (alone, failures)
    finally:
        print("kubernetes rollout timings:", {k: round(v, 1) for k, v in TIMINGS.items()})
        stopped = p.invoke("deployment_stop", info(dep_id, a))
        admin.delete_deployment(dep_id)
        admin.delete_environment(environment["id"])
    assert stopped.status == ActionStatus.OK and stopped.state == DeploymentState.STOPPED, stopped.msg
    assert leftovers(k8s_api, namespace, dep_id) == []

"""The agent's reading of the control plane's desired state, mixes included
(docs/rollouts.md): a deployment with a split runs the model its `servedModelId` names."""

from __future__ import annotations

from deckhand.agent.model import ObservedDeployment
from deckhand.agent.reconcile import plan
from deckhand.agent.sources import state_from_api
from deckhand.plugin.constants import BosunPluginActions, DeploymentState

CHAMPION = "a" * 24


def _body(**deployment: object) -> dict[str, object]:
    base = {"id": "d1", "modelId": CHAMPION, "modelSha256": "f" * 64, "modelFormat": "sklearn"}
    return {"revision": 3, "environment": {"id": "e1"}, "deployments": [{**base, **deployment}]}


def test_a_deployment_without_a_split_runs_its_champion_and_checks_its_checksum() -> None:
    (dep,) = state_from_api(_body()).deployments
    assert (dep.model_id, dep.model_sha256) == (CHAMPION, "f" * 64)
    (dep,) = state_from_api(_body(servedModelId=CHAMPION, traffic=None)).deployments
    assert (dep.model_id, dep.model_sha256) == (CHAMPION, "f" * 64)


def test_a_split_deployment_runs_its_mix_without_the_champions_checksum() -> None:
    traffic = {"canary": {"modelId": "b" * 24, "percent": 20}, "challengers": [], "sticky": None}
    (dep,) = state_from_api(_body(servedModelId="mix-0123456789abcdef", traffic=traffic)).deployments
    assert dep.model_id == "mix-0123456789abcdef"
    assert dep.model_sha256 is None  # the champion's checksum is not the mix file's


def test_a_new_share_is_a_model_change_for_the_reconciler() -> None:
    (dep,) = state_from_api(_body(servedModelId="mix-2222222222222222")).deployments
    running = ObservedDeployment("d1", DeploymentState.READY, model_id="mix-1111111111111111")
    (action,) = plan({"d1": dep}, {"d1": running})
    assert action.kind == BosunPluginActions.DEPLOYMENT_REPLACE_MODEL
    assert "mix-2222222222222222" in action.reason

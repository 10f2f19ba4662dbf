"""How the plugin turns what the cluster shows into the protocol's status (pure logic)."""

from __future__ import annotations

from deckhand.plugin import ActionStatus, DeploymentState
from deckhand.plugins.kubernetes.plugin import KubernetesPlugin, Observation

CONFIG = {
    "ppsBaseImage": "r/pps:1",
    "generatedImageRepo": "r/models",
    "outfacingPredictionURLPrefix": "http://models.example.com/deployments/",
}


def status(obs: Observation):
    return KubernetesPlugin(CONFIG)._status_of("d1", obs)


def test_not_deployed_is_stopped() -> None:
    result = status(Observation(exists=False))
    assert result.state == DeploymentState.STOPPED and result.status == ActionStatus.OK


def test_complete_rollout_is_ready() -> None:
    obs = Observation(True, desired_model="m2", serving_model="m2", complete=True, ready_pods=1, wanted=1)
    result = status(obs)
    assert (result.status, result.state) == (ActionStatus.OK, DeploymentState.READY)
    assert result.data == {
        "predictionUrl": "http://models.example.com/deployments/d1/predictions",
        "currentModelId": "m2",
    }


def test_replacement_in_progress_keeps_the_old_model() -> None:
    obs = Observation(True, desired_model="m2", serving_model="m1", wanted=1, old_ready=1)
    result = status(obs)
    assert (result.status, result.state) == (ActionStatus.WARN, DeploymentState.REPLACING_MODEL)
    assert result.data["oldModelInUse"] is True and result.data["currentModelId"] == "m1"


def test_stuck_replacement_is_failing_but_ready_with_the_old_model() -> None:
    problem = "pod dh-d1-x: container prediction-server keeps crashing (CrashLoopBackOff), restarted 3 time(s)"
    obs = Observation(True, desired_model="m2", serving_model="m1", wanted=1, old_ready=1, problems=[problem])
    result = status(obs)
    assert (result.status, result.state) == (ActionStatus.ERROR, DeploymentState.READY)
    assert result.data["oldModelInUse"] is True
    assert "CrashLoopBackOff" in result.msg and "old model m1 still serving" in result.msg


def test_pull_failure_without_an_old_model_is_errored() -> None:
    obs = Observation(
        True, desired_model="m1", wanted=1, problems=["pod p: container c cannot pull the image (ImagePullBackOff)"]
    )
    result = status(obs)
    assert (result.status, result.state) == (ActionStatus.ERROR, DeploymentState.ERROR)
    assert "ImagePullBackOff" in result.msg


def test_progress_deadline_counts_as_stuck() -> None:
    obs = Observation(True, desired_model="m1", wanted=1, stuck=True)
    result = status(obs)
    assert result.state == DeploymentState.ERROR and "progress deadline" in result.msg


def test_launching() -> None:
    result = status(Observation(True, desired_model="m1", wanted=2, ready_pods=1))
    assert (result.status, result.state) == (ActionStatus.WARN, DeploymentState.LAUNCHING)
    assert "1/2 pod(s)" in result.msg

"""How the agent reads a deployment's state from a plugin's status dict (deployment_list)."""

from __future__ import annotations

import pytest

from deckhand.agent.runtime import _observed_from_status
from deckhand.plugin.constants import DeploymentState


@pytest.mark.parametrize(
    "raw, state",
    [
        # The documented test plugin lists a running deployment's own fields, state "running".
        ({"state": "running", "model_id": "m1", "data": {"currentModelId": "m1"}}, DeploymentState.READY),
        ({"state": "ready", "status": "passing"}, DeploymentState.READY),
        ({"state": "errored", "status": "failing"}, DeploymentState.ERROR),
        ({"state": "sleeping"}, DeploymentState.UNKNOWN),  # a word no protocol knows
        ({"status": "passing"}, DeploymentState.READY),
        ({"status": "failing"}, DeploymentState.UNKNOWN),
    ],
)
def test_state_words_become_deployment_states(raw, state):
    observed = _observed_from_status("d1", raw, None)
    assert observed.state == state
    if "data" in raw:
        assert observed.model_id == "m1"

"""The API's enumerations of plugin-protocol values say what deckhand.plugin.constants says.

pydantic needs them as `Literal` types, written out; this keeps the two spellings one fact.
"""

from __future__ import annotations

from typing import get_args

from deckhand.plugin.action_status import ActionStatus
from deckhand.plugin.constants import DEPLOYMENT_STATES
from deckhand.server.replace_reasons import REPLACE_REASONS
from deckhand.server.schemas import common


def test_deployment_states_are_the_sdk_states():
    assert set(get_args(common.DeploymentState)) == DEPLOYMENT_STATES


def test_results_and_health_are_the_sdk_statuses():
    statuses = set(ActionStatus.to_numeric)
    assert set(get_args(common.Result)) == statuses
    assert set(get_args(common.EnvironmentHealth)) == statuses


def test_replace_reasons_are_the_cli_s_list():
    assert get_args(common.ReplaceReason) == REPLACE_REASONS

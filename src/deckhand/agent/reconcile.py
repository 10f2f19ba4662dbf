"""The reconciler: desired vs observed -> actions. One pure function, no I/O, so tests
call it without a plugin or a server."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from deckhand.agent.model import Action, DesiredDeployment, ObservedDeployment
from deckhand.plugin.constants import TRANSIENT_STATES, BosunPluginActions, DeploymentState

ABSENT = frozenset({DeploymentState.STOPPED})


def plan(
    desired: Mapping[str, DesiredDeployment],
    observed: Mapping[str, ObservedDeployment],
    busy: Collection[str] = (),
) -> list[Action]:
    """Actions that move `observed` towards `desired`; deployments in `busy` (their slot's
    action is under way — a plugin thread past its timeout included — or waits for a retry;
    see Slots.busy) are left alone."""
    actions: list[Action] = []
    for dep_id in sorted(set(desired) | set(observed)):
        if dep_id in busy:
            continue
        want = desired.get(dep_id)
        have = observed.get(dep_id)
        action = _decide(want, have)
        if action is not None:
            kind, reason = action
            actions.append(Action(kind, dep_id, want, have, reason))
    return actions


def _decide(want: DesiredDeployment | None, have: ObservedDeployment | None) -> tuple[str, str] | None:
    running = have is not None and have.state not in ABSENT
    if want is None or not want.active:
        if running and have is not None and have.state != DeploymentState.SHUTTING_DOWN:
            why = "deployment was deleted" if want is None else "deployment is inactive"
            return BosunPluginActions.DEPLOYMENT_STOP, why
        return None
    if not running or have is None:
        return BosunPluginActions.DEPLOYMENT_START, "deployment is not running"
    if have.state in TRANSIENT_STATES:
        return None
    if have.state == DeploymentState.ERROR:
        return BosunPluginActions.DEPLOYMENT_RELAUNCH, f"deployment is errored: {have.message or 'no message'}"
    if have.model_id is not None and have.model_id != want.model_id:
        return BosunPluginActions.DEPLOYMENT_REPLACE_MODEL, f"runs model {have.model_id}, should run {want.model_id}"
    return None

"""The reconciler as a pure function: desired vs observed -> actions."""

from deckhand.agent.model import DesiredDeployment, ObservedDeployment
from deckhand.agent.reconcile import plan


def kinds(actions):
    return {(a.deployment_id, a.kind) for a in actions}


def test_start_replace_stop_relaunch_and_nothing():
    desired = {
        "new": DesiredDeployment("new", "m1"),
        "same": DesiredDeployment("same", "m1"),
        "changed": DesiredDeployment("changed", "m2"),
        "off": DesiredDeployment("off", "m1", active=False),
        "broken": DesiredDeployment("broken", "m1"),
        "busy": DesiredDeployment("busy", "m1"),
        "starting": DesiredDeployment("starting", "m1"),
    }
    observed = {
        "same": ObservedDeployment("same", "ready", "m1"),
        "changed": ObservedDeployment("changed", "ready", "m1"),
        "off": ObservedDeployment("off", "ready", "m1"),
        "broken": ObservedDeployment("broken", "errored", "m1", message="artifact missing"),
        "orphan": ObservedDeployment("orphan", "ready", "m9"),
        "starting": ObservedDeployment("starting", "launching"),
        "gone": ObservedDeployment("gone", "stopped"),
    }
    actions = plan(desired, observed, busy={"busy"})
    assert kinds(actions) == {
        ("new", "deployment_start"),
        ("changed", "deployment_replace_model"),
        ("off", "deployment_stop"),
        ("broken", "deployment_relaunch"),
        ("orphan", "deployment_stop"),
    }
    reasons = {a.deployment_id: a.reason for a in actions}
    assert reasons["orphan"] == "deployment was deleted" and "m1, should run m2" in reasons["changed"]


def test_converged_state_plans_nothing():
    desired = {"a": DesiredDeployment("a", "m1"), "b": DesiredDeployment("b", "m2", active=False)}
    observed = {"a": ObservedDeployment("a", "ready", "m1"), "b": ObservedDeployment("b", "stopped")}
    assert plan(desired, observed) == []


def test_unknown_model_id_is_not_replaced_blindly():
    # A plugin that does not report currentModelId: nothing to compare, so no replace.
    assert plan({"a": DesiredDeployment("a", "m1")}, {"a": ObservedDeployment("a", "ready", None)}) == []

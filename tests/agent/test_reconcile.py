"""The reconciler as a pure function: desired vs observed -> actions."""

from deckhand.agent.model import DesiredDeployment as D
from deckhand.agent.model import ObservedDeployment as O
from deckhand.agent.reconcile import plan


def kinds(actions):
    return {(a.deployment_id, a.kind) for a in actions}


def test_start_replace_stop_relaunch_and_nothing():
    desired = {
        "new": D("new", "m1"),
        "same": D("same", "m1"),
        "changed": D("changed", "m2"),
        "off": D("off", "m1", active=False),
        "broken": D("broken", "m1"),
        "busy": D("busy", "m1"),
        "starting": D("starting", "m1"),
    }
    observed = {
        "same": O("same", "ready", "m1"),
        "changed": O("changed", "ready", "m1"),
        "off": O("off", "ready", "m1"),
        "broken": O("broken", "errored", "m1", message="artifact missing"),
        "orphan": O("orphan", "ready", "m9"),
        "starting": O("starting", "launching"),
        "gone": O("gone", "stopped"),
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
    desired = {"a": D("a", "m1"), "b": D("b", "m2", active=False)}
    observed = {"a": O("a", "ready", "m1"), "b": O("b", "stopped")}
    assert plan(desired, observed) == []


def test_unknown_model_id_is_not_replaced_blindly():
    # A plugin that does not report currentModelId: nothing to compare, so no replace.
    assert plan({"a": D("a", "m1")}, {"a": O("a", "ready", None)}) == []

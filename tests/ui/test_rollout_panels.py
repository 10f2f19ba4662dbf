"""The Rollout and Models panels from the API's JSON (ui/rollout_panels.py), without a server."""

from __future__ import annotations

from deckhand.server.ui.rollout_panels import (
    NO_DATA,
    NOT_JUDGED,
    WAITING,
    duration,
    gate_rows,
    models_panel,
    rollout_panel,
)

GATES = {"maxErrorRate": 0.01, "maxP99Ms": 50, "maxPsi": 0.2, "minRequests": 20}


def _report(requests: int, **gates: tuple[float | None, str]) -> dict:
    return {
        "requests": requests,
        "gates": {g: {"value": v, "limit": GATES[g], "verdict": verdict} for g, (v, verdict) in gates.items()},
    }


def test_gate_verdicts_say_pass_fail_or_why_they_wait() -> None:
    assert {r.gate: r.verdict for r in gate_rows(GATES, None)} == dict.fromkeys(GATES, NOT_JUDGED)

    waiting = gate_rows(GATES, _report(3, maxErrorRate=(0.0, "pass"), maxP99Ms=(None, "unknown")))
    assert [(r.gate, r.value, r.verdict) for r in waiting] == [
        ("maxErrorRate", "0.0%", "pass"),
        ("maxP99Ms", "—", WAITING),
        ("maxPsi", "—", WAITING),
        ("minRequests", "3", WAITING),
    ]
    report = _report(40, maxErrorRate=(0.05, "fail"), maxP99Ms=(12.5, "pass"), maxPsi=(None, "unknown"))
    judged = gate_rows(GATES, report)
    assert [(r.value, r.verdict, r.status) for r in judged] == [
        ("5.0%", "fail", "fail"),
        ("12.5 ms", "pass", "pass"),
        ("—", NO_DATA, "wait"),  # enough traffic, but too few predictions for a PSI
        ("40", "pass", "pass"),
    ]
    assert [r.limit for r in judged] == ["1.0%", "50 ms", "0.2", "20"]


def test_rollout_panel_splits_the_running_canary_and_lists_the_ended() -> None:
    assert rollout_panel([]) is None
    running = {"state": "running", "percent": 30, "intervalSeconds": 300, "gates": {}, "lastGates": None}
    ended = [{"state": s, "outcome": s} for s in ("aborted", "promoted", "rolled_back", "aborted", "aborted", "x")]
    panel = rollout_panel([running, *ended])
    assert panel is not None and panel.running is running and panel.gates == [] and panel.interval == "5 min"
    assert [r["state"] for r in panel.ended] == ["aborted", "promoted", "rolled_back", "aborted", "aborted"]
    assert panel.split is not None
    assert 'data-label="champion" data-value="70"' in panel.split
    assert 'data-label="canary" data-value="30"' in panel.split
    idle = rollout_panel(ended)
    assert idle is not None and idle.running is None and idle.split is None


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (45, 90, 300, 7200, 86400 * 2)] == ["45 s", "90 s", "5 min", "2 h", "2 d"]


def test_models_panel_puts_every_role_side_by_side() -> None:
    data = {
        "psiMinPredictions": 100,
        "models": [
            {"modelId": "champ", "requests": 80, "errorRate": 0.0, "p50Ms": 2.0, "p99Ms": 9.0, "agreement": None},
            {"modelId": "can", "requests": 20, "errorRate": 0.1, "p50Ms": 3.0, "p99Ms": 30.0, "psiVsChampion": 0.05},
            {"modelId": "chal", "requests": 100, "errorRate": 0.0, "p99Ms": 4.0, "agreement": 0.97, "meanAbsDiff": 0},
            {"modelId": "old", "requests": 5, "errorRate": 0.0, "p99Ms": 1.0},
        ],
    }
    challengers = [{"modelPackageId": "chal", "modelPackageName": "iris-v2"}, {"modelPackageId": "quiet"}]
    panel = models_panel(data, "champ", "can", challengers, {"champ": "iris"})
    assert panel is not None and panel.psi_min_predictions == 100
    assert [(r.model_id, r.role) for r in panel.rows] == [
        ("champ", "champion"), ("can", "canary"), ("chal", "challenger"), ("quiet", "challenger"), ("old", "earlier"),
    ]  # fmt: skip
    assert panel.rows[2].title == "challenger iris-v2" and panel.rows[3].requests is None
    charts = {str(c).split('data-chart="')[1].split('"')[0]: str(c) for c in panel.charts}
    assert charts["model-error-rate"].count('class="bar-row"') == 4  # every model with requests
    assert 'data-label="canary can" data-value="0.1" data-status="canary"' in charts["model-error-rate"]
    assert charts["model-agreement"].count('class="bar-row"') == 1  # only what was compared with the champion
    assert models_panel(None, "champ", None, [], {}) is None  # nothing to compare
    alone = models_panel(None, "champ", "can", [], {})
    assert alone is not None and alone.charts == [] and [r.requests for r in alone.rows] == [None, None]

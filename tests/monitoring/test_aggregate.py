"""The pure parts: the latency/value sketch, aggregation of records, PSI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from deckhand.monitoring import sketch
from deckhand.monitoring.aggregate import Aggregator, merge_distribution
from deckhand.monitoring.drift import drift_status, psi
from deckhand.monitoring.records import CLASS_NAMES, TIMESTAMP, data_record, stats_record


def test_sketch_quantiles_are_within_two_percent() -> None:
    values = np.random.default_rng(0).lognormal(mean=1.0, sigma=1.0, size=50_000)
    counts: sketch.Counts = {}
    halves = np.array_split(values, 2)
    for half in halves:  # merging two sketches = sketching everything
        part: sketch.Counts = {}
        sketch.add_values(part, half)
        sketch.merge(counts, part)
    for q in (0.5, 0.9, 0.99):
        exact = float(np.quantile(values, q))
        assert abs(sketch.quantile(counts, q) - exact) / exact < 0.02  # type: ignore[operator]
    assert sketch.quantile({}, 0.5) is None
    zero_and_negative: sketch.Counts = {}
    assert sketch.add_values(zero_and_negative, [0.0, -3.0, float("nan"), float("inf")]) == 2
    assert sketch.quantile(zero_and_negative, 0.0) == pytest.approx(-3.0, rel=0.02)


def test_histogram_rebins_onto_edges() -> None:
    counts: sketch.Counts = {}
    sketch.add_values(counts, [0.5] * 10 + [1.5] * 20 + [9.0] * 5)
    assert sketch.histogram(counts, [0.0, 1.0, 2.0, 3.0]) == [10, 20, 5]  # beyond the last edge: last bin


def test_aggregator_groups_by_source_deployment_and_minute() -> None:
    aggregator = Aggregator()
    for i in range(120):
        record = stats_record("d1", "m1", 2, float(i), user_errors=int(i % 10 == 0), timestamp=600.0 + i)
        record.update(data_record("d1", "m1", [{"x": float(i), "c": "red" if i % 2 else None}], [[0.2, 0.8]]))
        record[CLASS_NAMES] = ["no", "yes"]
        record[TIMESTAMP] = 600.0 + i
        aggregator.add("s1", record)
    aggregator.add("s1", {"deploymentId": "d1"})  # no ts: invalid, counted
    aggregator.add("s1", {"deploymentId": "d1", "ts": 1.0, "requests": "many"})
    out = sorted(aggregator.drain(), key=lambda a: a["minute"])
    assert [a["minute"] for a in out] == [600, 660]
    assert [a["requests"] for a in out] == [60, 60] and out[0]["rows"] == 120
    assert out[0]["userErrors"] == 6
    assert out[0]["predictions"] == {"cat": {"yes": 60}}
    assert out[0]["features"]["c"] == {"cat": {"red": 30}, "missing": 30}
    assert sum(out[0]["features"]["x"]["num"].values()) == 60
    assert aggregator.records == 120 and aggregator.invalid == 2
    merged = merge_distribution({}, out[0]["features"]["c"])
    merge_distribution(merged, out[1]["features"]["c"])
    assert merged == {"cat": {"red": 60}, "missing": 60}


def test_psi_thresholds() -> None:
    same = [0.25, 0.25, 0.25, 0.25]
    assert psi(same, same) == 0.0 and drift_status(0.0) == "ok"
    assert drift_status(psi(same, [0.4, 0.3, 0.2, 0.1])) == "warning"
    assert drift_status(psi(same, [0.97, 0.01, 0.01, 0.01])) == "drift"


def test_tracking_agent_cli_says_what_is_missing() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    proc = subprocess.run(
        [sys.executable, "-m", "deckhand.cli", "tracking-agent"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2
    assert "--channel (or DECKHAND_MONITORING)" in proc.stderr and "--token (or DECKHAND_TOKEN)" in proc.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "deckhand.cli", "tracking-agent", "--channel", "spool:rel", "--server", "http://x",
         "--token", "t"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "absolute path" in bad.stderr


def _keys(aggregates: list[dict]) -> dict[tuple, dict]:
    return {(a["sourceId"], a["deploymentId"], a["modelId"], a["shadow"], a["minute"]): a for a in aggregates}


def test_aggregates_are_per_model_and_shadow_flag_with_comparison_sums() -> None:
    """Champion, canary and a challenger's shadow records of one deployment and minute stay
    apart; a record without a model id keeps working (model id None)."""
    aggregator = Aggregator()
    for i in range(10):
        aggregator.add("s", stats_record("d", "champ", 2, 1.0, timestamp=600.0 + i))
        aggregator.add("s", stats_record("d", "canary", 1, 5.0, system_errors=int(i < 3), timestamp=600.0 + i))
        shadow = stats_record("d", "chall", 2, 9.0, timestamp=600.0 + i)
        shadow.update({"shadow": True, "comparedRows": 2, "agreedRows": 1 + i % 2, "absDiffSum": 0.25})
        aggregator.add("s", shadow)
    aggregator.add("s", stats_record("d", None, 1, 1.0, timestamp=610.0))
    aggregator.add("s", {**stats_record("d", "chall", 1, 1.0, timestamp=610.0), "shadow": "yes"})  # not a bool
    aggregator.add("s", {**stats_record("d", "chall", 1, 1.0, timestamp=610.0), "comparedRows": -1})
    out = _keys(aggregator.drain())
    assert sorted(out, key=str) == sorted(
        [("s", "d", "champ", False, 600), ("s", "d", "canary", False, 600), ("s", "d", "chall", True, 600),
         ("s", "d", None, False, 600)], key=str,
    )  # fmt: skip
    assert out[("s", "d", "champ", False, 600)]["rows"] == 20
    assert out[("s", "d", "canary", False, 600)]["systemErrors"] == 3
    challenger = out[("s", "d", "chall", True, 600)]
    assert (challenger["requests"], challenger["comparedRows"], challenger["agreedRows"]) == (10, 20, 15)
    assert challenger["absDiffSum"] == pytest.approx(2.5)
    assert out[("s", "d", "champ", False, 600)]["comparedRows"] == 0
    assert aggregator.invalid == 2 and aggregator.records == 31


def test_reporter_aggregates_keep_their_model_and_shadow_flag() -> None:
    """An aggregate that arrives aggregated (a prediction server's reporter) is filed under
    its own model and shadow flag, its sums added."""
    aggregator = Aggregator()
    base = {"deploymentId": "d", "minute": 600, "requests": 4, "rows": 4, "latency": {}}
    aggregator.add("s", {**base, "modelId": "champ"})
    aggregator.add("s", {**base, "modelId": "chall", "shadow": True, "comparedRows": 4, "agreedRows": 3})
    aggregator.add("s", {**base, "modelId": "chall", "shadow": True, "comparedRows": 4, "agreedRows": 4,
                         "absDiffSum": 1.5})  # fmt: skip
    out = _keys(aggregator.drain())
    assert set(out) == {("s", "d", "champ", False, 600), ("s", "d", "chall", True, 600)}
    challenger = out[("s", "d", "chall", True, 600)]
    assert (challenger["requests"], challenger["comparedRows"], challenger["agreedRows"]) == (8, 8, 7)
    assert challenger["absDiffSum"] == 1.5

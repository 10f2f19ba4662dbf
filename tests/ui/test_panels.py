"""The chart and panel functions on their own, fed the monitoring API's documented shapes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from deckhand.server.ui.charts import Bar, Series, bar_chart, line_chart, nice_ceiling
from deckhand.server.ui.panels import (
    drift_panel,
    find_window,
    health_panel,
    predictions_panel,
    window_range,
)

T0 = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 1.0), (0.07, 0.1), (1, 1.0), (3, 5.0), (40, 50.0), (120, 200.0), (2400, 2500.0)]
)
def test_nice_ceiling(value: float, expected: float) -> None:
    assert nice_ceiling(value) == pytest.approx(expected)


def test_line_chart_breaks_lines_at_missing_values_and_reports_what_it_drew() -> None:
    times = [T0 + timedelta(minutes=i) for i in range(5)]
    svg = str(line_chart("lat", "Latency", times, [Series("p50", [1.0, 2.0, None, 4.0, 5.0], "s-p50")]))
    assert svg.count("<polyline") == 2  # the gap splits the line
    assert svg.count('<circle class="point"') == 4
    assert 'data-points="4" data-sum="12"' in svg
    assert 'data-max="5"' in svg and ">17:00<" in svg and ">17:04<" in svg


def test_chart_text_is_escaped() -> None:
    bars = [Bar('<script>alert("x")</script>', 0.3, "drift")]
    svg = str(bar_chart("drift", "PSI <b>", bars, thresholds=(0.1, 0.25)))
    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg
    assert svg.count('class="threshold"') == 2


def test_window_range_ends_after_now_on_a_bucket_boundary() -> None:
    window = find_window("1h")
    start, end = window_range(window, now=T0 + timedelta(seconds=75))
    assert end == T0 + timedelta(minutes=2) and end - start == timedelta(hours=1)
    assert window_range(window, now=T0)[1] == T0 + timedelta(minutes=1)  # the current minute is included
    assert find_window("nonsense").key == "1h"


def test_health_panel_fills_missing_buckets_and_keeps_totals() -> None:
    health = {
        "start": _iso(T0),
        "end": _iso(T0 + timedelta(minutes=10)),
        "bucketSeconds": 60,
        "totals": {"requests": 30, "rows": 60, "userErrors": 2, "systemErrors": 1,
                   "latencyP50Ms": 3.2, "latencyP99Ms": 9},
        "buckets": [  # only two of ten buckets given: the rest are drawn as zero / no latency
            {"start": _iso(T0 + timedelta(minutes=3)), "requests": 10, "userErrors": 2,
             "latencyP50Ms": 3, "latencyP99Ms": 8},
            {"start": _iso(T0 + timedelta(minutes=7)), "requests": 20, "systemErrors": 1,
             "latencyP50Ms": 4, "latencyP99Ms": 9},
        ],
    }  # fmt: skip
    panel = health_panel(health)
    assert panel.bucket_count == 10 and panel.has_traffic
    assert panel.totals["requests"] == 30 and panel.totals["latencyP99Ms"] == 9
    requests, latency, errors = (str(chart) for chart in panel.charts)
    assert 'data-series="requests" data-points="10" data-sum="30"' in requests
    assert 'data-series="p50" data-points="2" data-sum="7"' in latency
    assert 'data-series="p99" data-points="2" data-sum="17"' in latency
    assert 'data-sum="2"' in errors and 'data-sum="1"' in errors


def test_health_panel_without_traffic() -> None:
    panel = health_panel({"start": _iso(T0), "end": _iso(T0 + timedelta(minutes=2)), "bucketSeconds": 60, "totals": {}})
    assert not panel.has_traffic and panel.totals["requests"] is None
    assert 'data-points="2" data-sum="0"' in str(panel.charts[0])


def test_drift_panel_uses_the_api_thresholds_and_shows_bins() -> None:
    drift = {
        "baseline": "first-window",
        "baselineStart": _iso(T0),
        "baselineEnd": _iso(T0 + timedelta(hours=1)),
        "thresholds": {"warning": 0.2, "drift": 0.5},
        "features": [
            {"name": "age", "psi": 0.61, "status": "drift", "bins": ["0..10", "10..20"],
             "baselineShare": [0.5, 0.5], "currentShare": [0.9, 0.1]},
            {"name": "city", "psi": 0.01, "status": "ok", "bins": ["a", "b", "__other__"],
             "baselineShare": [0.4, 0.6, 0.0], "currentShare": [0.41, 0.59, 0.0]},
        ],
    }  # fmt: skip
    panel = drift_panel(drift)
    assert "first hour of data" in panel.baseline and "17:00" in panel.baseline
    summary = str(panel.summary)
    assert 'data-label="age" data-value="0.61" data-status="drift"' in summary
    assert "bar-drift" in summary and "bar-ok" in summary
    assert "PSI below 0.2" in summary  # the API's thresholds, not the defaults
    assert [f.name for f in panel.features] == ["age", "city"]
    age_bins = str(panel.features[0].chart)
    assert 'data-series="current" data-points="2" data-sum="1"' in age_bins and ">0..10<" in age_bins


def test_drift_panel_without_features_has_no_chart() -> None:
    panel = drift_panel({"baseline": "package", "features": []})
    assert panel.summary is None and "model package" in panel.baseline


def test_predictions_panel_for_classes_and_for_bins() -> None:
    classes = predictions_panel(
        {"classes": [{"label": "setosa", "count": 3, "share": 0.75}, {"label": "virginica", "count": 1, "share": 0.25}]}
    )
    assert classes is not None and 'data-points="2" data-sum="4"' in str(classes)
    bins = predictions_panel({"bins": [{"start": 0.0, "end": 0.5, "count": 2}, {"start": 0.5, "end": 1.0, "count": 5}]})
    assert bins is not None and re.search(r">0–0.5<", str(bins))
    assert predictions_panel({"bins": []}) is None


def test_line_chart_of_one_bucket_labels_its_time_once() -> None:
    svg = str(line_chart("one", "One", [T0], [Series("x", [0.5], "s-p50")]))
    assert svg.count(">17:00<") == 1 and 'text-anchor="middle">17:00<' in svg
    two = str(line_chart("two", "Two", [T0, T0 + timedelta(hours=1)], [Series("x", [0.5, 0.7], "s-p50")]))
    assert two.count(">17:00<") == 1 and two.count(">18:00<") == 1

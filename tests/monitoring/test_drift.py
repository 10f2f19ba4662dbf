"""deckhand.monitoring.drift: known distributions give known PSI, one-sided and empty inputs."""

from __future__ import annotations

import math

import pytest

from deckhand.monitoring import sketch
from deckhand.monitoring.aggregate import OTHER
from deckhand.monitoring.drift import (
    PSI_DRIFT,
    PSI_FLOOR,
    PSI_WARNING,
    compare,
    drift_status,
    feature_drift,
    psi,
    shares,
)


def _num(values: list[float]) -> dict[str, int]:
    counts: dict[str, int] = {}
    sketch.add_values(counts, values)
    return counts


# ----- psi, shares, status -----------------------------------------------------------------------


def test_identical_shares_have_no_drift() -> None:
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_psi_of_known_shares() -> None:
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)


def test_psi_is_symmetric_and_never_negative() -> None:
    a, b = [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]
    assert psi(a, b) == pytest.approx(psi(b, a))
    assert psi(a, b) > 0


def test_an_empty_bin_is_floored_not_infinite() -> None:
    value = psi([1.0, 0.0], [0.0, 1.0])
    assert value == pytest.approx(2 * (1 - PSI_FLOOR) * math.log(1 / PSI_FLOOR))
    assert math.isfinite(value)


def test_psi_of_no_bins_is_zero_and_lengths_must_match() -> None:
    assert psi([], []) == 0.0
    with pytest.raises(ValueError):
        psi([0.5, 0.5], [1.0])


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (0.0, "ok"),
        (PSI_WARNING - 1e-9, "ok"),
        (PSI_WARNING, "warning"),
        (PSI_DRIFT - 1e-9, "warning"),
        (PSI_DRIFT, "drift"),
        (50.0, "drift"),
    ],
)
def test_status_thresholds(value: float, status: str) -> None:
    assert drift_status(value) == status


def test_shares() -> None:
    assert shares([1, 3]) == [0.25, 0.75]
    assert shares([0, 0]) == [0.0, 0.0]
    assert shares([]) == []


# ----- one feature -------------------------------------------------------------------------------


def test_numeric_package_baseline_with_the_same_data_shows_no_drift() -> None:
    base = {"kind": "numeric", "edges": [0, 1, 2], "counts": [50, 50]}
    result = feature_drift("x", base, {"num": _num([0.5] * 30 + [1.5] * 30)})
    assert result is not None
    assert (result.name, result.kind, result.status) == ("x", "numeric", "ok")
    assert result.psi == 0.0
    assert result.bins == ["0..1", "1..2"]
    assert result.baseline_share == [0.5, 0.5] and result.current_share == [0.5, 0.5]
    assert (result.baseline_count, result.current_count) == (100, 60)


def test_numeric_shift_into_one_bin() -> None:
    base = {"kind": "numeric", "edges": [0, 1, 2], "counts": [50, 50]}
    result = feature_drift("x", base, {"num": _num([0.5] * 40)})
    assert result is not None
    assert result.current_share == [1.0, 0.0]
    assert result.psi == pytest.approx(psi([0.5, 0.5], [1.0, 0.0]), abs=1e-6)
    assert result.status == "drift"


def test_values_outside_the_baseline_edges_go_to_the_end_bins() -> None:
    base = {"kind": "numeric", "edges": [0, 1, 2, 3], "counts": [10, 10, 10]}
    result = feature_drift("x", base, {"num": _num([-5.0, 10.0, 1.5])})
    assert result is not None and result.current_share == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert result.psi == 0.0


def test_numeric_wire_baseline_uses_its_deciles() -> None:
    values = [float(v) for v in range(1, 101)]
    result = feature_drift("x", {"num": _num(values)}, {"num": _num(values)})
    assert result is not None
    assert result.kind == "numeric" and len(result.bins) == 10
    assert result.psi == 0.0 and result.status == "ok"
    assert sum(result.current_share) == pytest.approx(1.0)


def test_categorical_package_baseline_and_other() -> None:
    base = {"kind": "categorical", "counts": {"a": 30, "b": 60}, "other": 10}
    same = feature_drift("c", base, {"cat": {"a": 3, "b": 6, "never-seen": 1}})
    assert same is not None
    assert same.kind == "categorical" and same.bins == ["a", "b", OTHER]
    assert same.baseline_share == pytest.approx([0.3, 0.6, 0.1])
    assert same.current_share == pytest.approx([0.3, 0.6, 0.1])
    assert same.psi == 0.0


def test_categorical_wire_baseline_against_unseen_categories() -> None:
    result = feature_drift("c", {"cat": {"red": 5}}, {"cat": {"blue": 5}})
    assert result is not None
    assert result.bins == ["red", OTHER]
    assert result.baseline_share == [1.0, 0.0] and result.current_share == [0.0, 1.0]
    assert result.psi == pytest.approx(psi([1.0, 0.0], [0.0, 1.0]), abs=1e-6)
    assert result.status == "drift"


def test_a_categorical_baseline_counts_numbers_as_categories() -> None:
    result = feature_drift("c", {"cat": {"a": 1}}, {"num": _num([7.0, 7.0])})
    assert result is not None
    assert result.current_count == 2 and result.current_share == [0.0, 1.0]  # not "a": __other__


@pytest.mark.parametrize("current", [{}, {"missing": 12}, {"num": {}}, {"cat": {}}])
def test_no_current_values_is_none(current: dict) -> None:
    base = {"kind": "numeric", "edges": [0, 1], "counts": [5]}
    assert feature_drift("x", base, current) is None
    assert feature_drift("c", {"cat": {"a": 1}}, current) is None


def test_a_baseline_without_counts_has_psi_zero() -> None:
    base = {"kind": "numeric", "edges": [0, 1, 2], "counts": [0, 0]}
    result = feature_drift("x", base, {"num": _num([0.5, 1.5])})
    assert result is not None
    assert result.psi == 0.0 and result.status == "ok"
    assert result.baseline_share == [0.0, 0.0] and result.baseline_count == 0
    empty_categories = feature_drift("c", {"kind": "categorical", "counts": {}}, {"cat": {"a": 2}})
    assert empty_categories is not None and empty_categories.bins == [OTHER] and empty_categories.psi == 0.0


def test_a_single_value_baseline_gets_one_bin_around_it() -> None:
    result = feature_drift("x", {"num": _num([3.0] * 10)}, {"num": _num([3.0] * 4)})
    assert result is not None and len(result.bins) == 1 and result.psi == 0.0


# ----- all features ------------------------------------------------------------------------------


def test_compare_keeps_the_baseline_order_and_lists_features_without_data() -> None:
    baseline = {
        "b": {"cat": {"x": 1}},
        "a": {"kind": "numeric", "edges": [0, 1], "counts": [1]},
        "quiet": {"cat": {"y": 1}},
    }
    current = {"a": {"num": _num([0.5])}, "b": {"cat": {"x": 4}}, "only-now": {"cat": {"z": 1}}}
    report = compare(baseline, current)
    assert [f.name for f in report.features] == ["b", "a"]
    assert report.features_without_data == ["quiet"]


def test_compare_of_nothing() -> None:
    report = compare({}, {"a": {"cat": {"x": 1}}})
    assert report.features == [] and report.features_without_data == []

"""Accuracy sums against scikit-learn's metrics on the same rows, merged across buckets and
with corrected actuals taken back."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from sklearn import metrics as skm

from deckhand.server.services.accuracy.metrics import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    auc,
    combine,
    contribution,
    metrics,
)


def _sums(pairs: list[tuple], buckets: int = 7) -> dict:
    """The pairs' contributions spread over buckets, then the buckets added up (as a query does)."""
    parts: list[dict] = [{} for _ in range(buckets)]
    for index, args in enumerate(pairs):
        combine(parts[index % buckets], contribution(*args))
    total: dict = {}
    for part in parts:
        combine(total, part)
    return total


def test_regression_matches_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(10, 3, 2000)
    predicted = y + rng.normal(0, 1.5, 2000)
    got = metrics(
        REGRESSION, _sums([(float(p), None, None, None, float(a)) for p, a in zip(predicted, y, strict=True)])
    )
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, predicted)), rel=1e-9)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, predicted), rel=1e-9)
    assert got["r2"] == pytest.approx(skm.r2_score(y, predicted), rel=1e-9)


def test_binary_matches_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, 3000)
    score = np.clip(truth * 0.3 + rng.uniform(0, 0.7, 3000), 0.0001, 0.9999).round(4)  # scores of 4 decimals
    names = ["no", "yes"]
    labels = np.where(score >= 0.5, "yes", "no")
    actual = np.where(truth == 1, "yes", "no")
    pairs = [
        (None, str(lab), [1 - float(s), float(s)], names, str(a))
        for s, lab, a in zip(score, labels, actual, strict=True)
    ]
    got = metrics(BINARY, _sums(pairs))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(actual, labels))
    assert got["auc"] == pytest.approx(skm.roc_auc_score(truth, score), abs=1e-12)
    assert got["logLoss"] == pytest.approx(skm.log_loss(actual, np.c_[1 - score, score], labels=names), rel=1e-9)
    assert got["precision"] == pytest.approx(skm.precision_score(actual, labels, pos_label="yes"))
    assert got["recall"] == pytest.approx(skm.recall_score(actual, labels, pos_label="yes"))


def test_multiclass_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    names = ["setosa", "versicolor", "virginica"]
    probabilities = rng.dirichlet([1, 1, 1], 1500)
    actual = [names[i] for i in rng.integers(0, 3, 1500)]
    predicted = [names[i] for i in probabilities.argmax(axis=1)]
    pairs = [
        (None, p, list(map(float, row)), names, a) for p, row, a in zip(predicted, probabilities, actual, strict=True)
    ]
    got = metrics(MULTICLASS, _sums(pairs))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(actual, predicted))
    assert got["logLoss"] == pytest.approx(skm.log_loss(actual, probabilities, labels=names), rel=1e-9)


def test_a_corrected_actual_is_taken_back_exactly() -> None:
    """Adding a wrong actual, subtracting it and adding the right one gives the sums of the
    right one alone (the AUC's score counts too)."""
    names = ["0", "1"]
    rows = [(None, None, [1 - s, s], names) for s in (0.2, 0.7, 0.55, 0.9)]
    truth = ["0", "1", "0", "1"]
    right = _sums([(*r, t) for r, t in zip(rows, truth, strict=True)], buckets=1)
    sums: dict = {}
    for r, t in zip(rows, truth, strict=True):
        wrong = "1" if t == "0" else "0"
        combine(sums, contribution(*r, wrong))
        combine(sums, contribution(*r, wrong), sign=-1)
        combine(sums, contribution(*r, t))
    assert metrics(BINARY, sums) == metrics(BINARY, right)
    assert sums["pos"] == right["pos"] and sums["neg"] == right["neg"]


def test_labels_compare_as_text_and_bad_pairs_are_not_counted() -> None:
    names = ["0", "1"]
    assert contribution(None, "1", [0.3, 0.7], names, 1)["correct"] == 1  # 1 == "1"
    assert contribution(None, "1", [0.3, 0.7], names, 1.0)["correct"] == 1
    assert contribution(2.0, None, None, None, "high") is None  # a label for a regression model
    assert auc({"0.5000": 3}, {}) is None  # one class only: no AUC


def test_auc_counts_ties_half() -> None:
    random.seed(4)
    scores = [round(random.random(), 1) for _ in range(400)]  # many ties
    truth = [int(random.random() < s) for s in scores]
    positive: dict[str, int] = {}
    negative: dict[str, int] = {}
    for s, t in zip(scores, truth, strict=True):
        side = positive if t else negative
        side[f"{s:.4f}"] = side.get(f"{s:.4f}", 0) + 1
    assert auc(positive, negative) == pytest.approx(skm.roc_auc_score(truth, scores), abs=1e-12)

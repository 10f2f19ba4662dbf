"""Accuracy as sums: what one matched (prediction, actual) pair adds to a bucket, and the
metrics a bucket's sums give.

Every metric is computed from additive sums, so buckets merge by adding and a corrected
actual is taken back by subtracting what its old value added (`combine(..., sign=-1)`):

- regression: n, sum |e|, sum e², sum y, sum y² (RMSE, MAE, R²);
- classification: n, correct, sum of -log p(actual) (accuracy, log loss);
- binary adds the confusion at the threshold (tp, fp, tn, fn: precision, recall) and the
  positive-class scores of positive and negative rows as counts per score rounded to
  SCORE_DIGITS decimals, from which AUC is exact for scores of that precision.

The positive class of a binary model is its second class label (scikit-learn's
`classes_[1]`); a row is predicted positive when its score is at least THRESHOLD.
"""

from __future__ import annotations

import math
from typing import Any

REGRESSION = "regression"
BINARY = "binary"
MULTICLASS = "multiclass"
KINDS = (REGRESSION, BINARY, MULTICLASS)
THRESHOLD = 0.5
SCORE_DIGITS = 4
# log loss clips p to [EPS, 1 - EPS] as scikit-learn does for float64
EPS = 2.220446049250313e-16  # numpy.finfo(float).eps

Sums = dict[str, Any]


def kind_of(prediction: float | None, probabilities: list[float] | None) -> str:
    if probabilities:
        return BINARY if len(probabilities) == 2 else MULTICLASS
    return REGRESSION


def label_text(value: Any) -> str:
    """A class label as text: 1, 1.0 and "1" are the same class."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def contribution(
    prediction: float | None,
    label: str | None,
    probabilities: list[float] | None,
    class_names: list[str] | None,
    actual: Any,
) -> Sums | None:
    """What one matched pair adds to its bucket; None when the actual cannot be scored
    against this prediction (a label for a regression model, a number the model never
    predicts is still a miss, not an error)."""
    if probabilities:
        names = [label_text(c) for c in class_names or ()]
        truth = label_text(actual)
        if len(probabilities) == 2:  # the label at the threshold, as the confusion counts it
            predicted = names[1] if probabilities[1] >= THRESHOLD else names[0]
        else:
            predicted = names[max(range(len(probabilities)), key=probabilities.__getitem__)]
        sums: Sums = {"n": 1, "correct": int(predicted == truth)}
        p_true = probabilities[names.index(truth)] if truth in names else 0.0
        sums["logLoss"] = -math.log(min(max(float(p_true), EPS), 1 - EPS))
        if len(probabilities) == 2:
            score = float(probabilities[1])
            positive = truth == names[1]
            predicted_positive = score >= THRESHOLD
            cell = ("tp" if predicted_positive else "fn") if positive else ("fp" if predicted_positive else "tn")
            sums[cell] = 1
            sums["pos" if positive else "neg"] = {f"{round(score, SCORE_DIGITS):.{SCORE_DIGITS}f}": 1}
        return sums
    if label is not None and prediction is None:  # a classifier reporting labels only
        return {"n": 1, "correct": int(label_text(label) == label_text(actual))}
    if prediction is None or isinstance(actual, bool) or not isinstance(actual, int | float):
        return None
    y, error = float(actual), float(actual) - float(prediction)
    return {"n": 1, "abs": abs(error), "sq": error * error, "y": y, "y2": y * y}


def combine(into: Sums, add: Sums, sign: int = 1) -> Sums:
    """`into` plus (sign 1) or minus (sign -1) `add`, in place; counts that reach 0 go."""
    for key, value in add.items():
        if isinstance(value, dict):
            counts = into.setdefault(key, {})
            for score, count in value.items():
                total = counts.get(score, 0) + sign * count
                if total:
                    counts[score] = total
                else:
                    counts.pop(score, None)
            if not counts:
                into.pop(key)
        else:
            total = into.get(key, 0) + sign * value
            if isinstance(total, float) and abs(total) < 1e-12 and key != "logLoss":
                total = 0.0
            into[key] = total
    return into


def auc(positive: dict[str, int], negative: dict[str, int]) -> float | None:
    """Area under the ROC curve from score counts: the chance that a positive row scores
    above a negative one, ties counting half. None without both classes."""
    n_pos, n_neg = sum(positive.values()), sum(negative.values())
    if not n_pos or not n_neg:
        return None
    below = 0  # negatives scoring below the current score
    wins = 0.0
    for score in sorted(set(positive) | set(negative), key=float):
        pos, neg = positive.get(score, 0), negative.get(score, 0)
        wins += pos * (below + 0.5 * neg)
        below += neg
    return wins / (n_pos * n_neg)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def metrics(kind: str, sums: Sums) -> dict[str, float | None]:
    """The metrics of a bucket's (or a window's added) sums."""
    n = sums.get("n", 0)
    if not n:
        return {}
    if kind == REGRESSION:
        total_variance = sums["y2"] - sums["y"] ** 2 / n
        return {
            "rmse": math.sqrt(max(sums["sq"], 0.0) / n),
            "mae": sums["abs"] / n,
            "r2": 1 - sums["sq"] / total_variance if total_variance > 1e-12 else None,
        }
    out: dict[str, float | None] = {"accuracy": sums.get("correct", 0) / n}
    if "logLoss" in sums:
        out["logLoss"] = sums["logLoss"] / n
    if kind == BINARY:
        tp, fp, fn = sums.get("tp", 0), sums.get("fp", 0), sums.get("fn", 0)
        out["auc"] = auc(sums.get("pos", {}), sums.get("neg", {}))
        out["precision"] = _ratio(tp, tp + fp)
        out["recall"] = _ratio(tp, tp + fn)
    return out


METRIC_NAMES = {
    REGRESSION: ("rmse", "mae", "r2"),
    BINARY: ("accuracy", "auc", "logLoss", "precision", "recall"),
    MULTICLASS: ("accuracy", "logLoss"),
}

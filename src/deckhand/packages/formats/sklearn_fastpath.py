"""Verified fast paths for common scikit-learn models on numeric arrays.

scikit-learn validates its input on every call, even for one row, which costs far more
than the prediction itself: for `[StandardScaler] -> LogisticRegression | LinearRegression | Ridge | Lasso` the
arithmetic itself takes microseconds. `compile_linear` rebuilds that arithmetic from the
fitted attributes; `compile_boosted_trees` calls gradient boosting's own tree walk
(`predict_stages`, the Cython loop `predict()` ends in) without the validation around it
(about 180 us of a 1-row `predict()` of 100 trees, against 25 us for the walk). Each is kept
only if it matches the estimator's own output on probe inputs at load time; anything else
(other steps, other solvers, an init that depends on the input, a scikit-learn without
that loop, a mismatch) returns None and the server calls scikit-learn as usual. Set
DECKHAND_SKLEARN_FASTPATH=0 to turn them off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit

from deckhand.packages.model import ModelInputError

FastFn = Callable[[np.ndarray], np.ndarray]
ENV = "DECKHAND_SKLEARN_FASTPATH"


def _steps(estimator: Any) -> list[Any]:
    steps = getattr(estimator, "steps", None)
    return [step for _, step in steps] if steps is not None else [estimator]


def _scaler(step: Any) -> tuple[np.ndarray | float, np.ndarray | float] | None:
    if type(step).__name__ != "StandardScaler":
        return None
    mean = step.mean_ if getattr(step, "with_mean", True) and step.mean_ is not None else 0.0
    scale = step.scale_ if getattr(step, "with_std", True) and step.scale_ is not None else 1.0
    return mean, scale


def _final(step: Any, classifier: bool) -> Callable[[np.ndarray], np.ndarray] | None:
    name = type(step).__name__
    coef = np.asarray(getattr(step, "coef_", None), dtype=float)
    intercept = np.asarray(getattr(step, "intercept_", 0.0), dtype=float)
    if coef.ndim == 0:
        return None
    if classifier and name == "LogisticRegression":
        weights = coef.T
        if weights.shape[1] == 1:  # binary

            def binary(x: np.ndarray) -> np.ndarray:
                p = expit(x @ weights + intercept)
                return np.hstack([1.0 - p, p])

            return binary

        def softmax(x: np.ndarray) -> np.ndarray:
            z = x @ weights + intercept
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            return z

        return softmax
    if not classifier and name in ("LinearRegression", "Ridge", "Lasso", "ElasticNet"):
        if coef.ndim != 1:
            return None
        return lambda x: x @ coef + intercept
    return None


def compile_linear(estimator: Any, n_features: int, classifier: bool) -> FastFn | None:
    """A verified equivalent of predict_proba/predict, or None."""
    if os.environ.get(ENV, "1") == "0" or n_features <= 0:
        return None
    steps = _steps(estimator)
    scalers = [_scaler(s) for s in steps[:-1]]
    if any(s is None for s in scalers):
        return None
    final = _final(steps[-1], classifier)
    if final is None:
        return None

    def fast(x: np.ndarray) -> np.ndarray:
        if not np.isfinite(x).all():
            raise ModelInputError("input contains NaN or infinity; send a number for every feature")
        for mean, scale in scalers:  # type: ignore[misc]
            x = (x - mean) / scale
        return final(x)

    return _verified(fast, estimator, classifier, np.random.default_rng(0).normal(0.0, 3.0, size=(32, n_features)))


def _verified(fast: FastFn, estimator: Any, classifier: bool, probe: np.ndarray) -> FastFn | None:
    """`fast` if it gives the estimator's own answers on the probe rows, else None."""
    try:
        reference = estimator.predict_proba(probe) if classifier else estimator.predict(probe)
        ok = np.allclose(fast(probe), reference, rtol=1e-9, atol=1e-12)
    except Exception:
        return None
    return fast if ok else None


BOOSTED = ("GradientBoostingRegressor", "GradientBoostingClassifier")


def compile_boosted_trees(estimator: Any, n_features: int, classifier: bool) -> FastFn | None:
    """A verified equivalent of a gradient boosting model's predict_proba/predict, or None."""
    if os.environ.get(ENV, "1") == "0" or n_features <= 0 or type(estimator).__name__ not in BOOSTED:
        return None
    try:
        from sklearn.ensemble._gradient_boosting import predict_stages
    except ImportError:
        return None
    stages, rate = estimator.estimators_, float(estimator.learning_rate)
    probe = _tree_probe(stages, n_features)
    try:
        # The init estimator's share of the raw score: what predict() adds to the trees' sum.
        # Kept only if it is one constant (the default prior / mean / zero), not a model of its own.
        walked = np.zeros((len(probe), stages.shape[1]))
        predict_stages(stages, np.ascontiguousarray(probe, dtype=np.float32), rate, walked)
        raw = estimator.decision_function(probe) if classifier else estimator.predict(probe)
        init = np.asarray(raw, dtype=float).reshape(len(probe), -1) - walked
        if not np.allclose(init, init[:1], rtol=0, atol=1e-9):
            return None
        init = init[:1].copy()
    except Exception:
        return None
    link = _boosted_link(classifier, stages.shape[1])

    def fast(x: np.ndarray) -> np.ndarray:
        if not np.isfinite(x).all():
            raise ModelInputError("input contains NaN or infinity; send a number for every feature")
        out = np.repeat(init, len(x), axis=0)
        predict_stages(stages, np.ascontiguousarray(x, dtype=np.float32), rate, out)
        return link(out)

    return _verified(fast, estimator, classifier, probe)


def _boosted_link(classifier: bool, columns: int) -> Callable[[np.ndarray], np.ndarray]:
    """Raw scores to what predict()/predict_proba() return (the losses' own links)."""
    if not classifier:
        return lambda raw: raw[:, 0]
    if columns == 1:  # binary log loss: a sigmoid

        def binary(raw: np.ndarray) -> np.ndarray:
            p = expit(raw[:, 0])
            return np.column_stack([1.0 - p, p])

        return binary

    def softmax(raw: np.ndarray) -> np.ndarray:
        raw -= raw.max(axis=1, keepdims=True)
        np.exp(raw, out=raw)
        raw /= raw.sum(axis=1, keepdims=True)
        return raw

    return softmax


def _tree_probe(stages: np.ndarray, n_features: int, rows: int = 64) -> np.ndarray:
    """Probe rows whose values sit just either side of the trees' own split thresholds, so the
    check walks many different paths (random values far from them would all take the same)."""
    rng = np.random.default_rng(0)
    thresholds: list[list[float]] = [[] for _ in range(n_features)]
    for tree in stages[: min(len(stages), 20)].ravel():
        t = tree.tree_
        for feature, threshold in zip(t.feature, t.threshold, strict=True):
            if 0 <= feature < n_features:
                thresholds[feature].append(float(threshold))
    probe = rng.normal(0.0, 3.0, size=(rows, n_features))
    for f, seen in enumerate(thresholds):
        if seen:
            picked = rng.choice(np.asarray(seen), size=rows)
            probe[:, f] = picked + rng.choice([-1.0, 1.0], size=rows) * np.maximum(np.abs(picked), 1.0) * 1e-3
    return probe

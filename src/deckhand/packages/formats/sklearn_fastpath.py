"""Verified NumPy fast path for linear scikit-learn models on numeric arrays.

scikit-learn validates its input on every call, even for one row, which costs far more
than the prediction itself: for `[StandardScaler] -> LogisticRegression | LinearRegression | Ridge | Lasso` the
arithmetic itself takes microseconds. `compile_linear` rebuilds that arithmetic from the
fitted attributes and keeps it only if it matches the estimator's own output on random
inputs; anything else (other steps, other solvers, a mismatch) returns None and the
server calls scikit-learn as usual. Set DECKHAND_SKLEARN_FASTPATH=0 to turn it off.
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

    probe = np.random.default_rng(0).normal(0.0, 3.0, size=(32, n_features))
    try:
        reference = estimator.predict_proba(probe) if classifier else estimator.predict(probe)
        ok = np.allclose(fast(probe), reference, rtol=1e-9, atol=1e-12)
    except Exception:
        return None
    return fast if ok else None

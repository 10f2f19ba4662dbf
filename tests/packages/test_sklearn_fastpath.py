"""The NumPy fast path gives scikit-learn's answers, or stays off."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest

from deckhand.packages import Batch, ModelInputError, build_package, load_model
from deckhand.packages.demo import sample_rows, train_demo_package


@pytest.mark.parametrize("task", ["multiclass", "binary", "regression"])
def test_fast_path_matches_sklearn(tmp_path: Path, task: str) -> None:
    manifest = train_demo_package(tmp_path / "m.dhpkg", task=task)  # type: ignore[arg-type]
    model = load_model(tmp_path / "m.dhpkg")
    assert model.fast is not None  # type: ignore[attr-defined]
    rows = [[r[f] for f in manifest.feature_names] for r in sample_rows(50, task=task)]  # type: ignore[arg-type]
    got = model.predict(Batch(manifest.feature_names, rows=rows))
    x = np.array(rows)
    if task == "regression":
        assert np.allclose(got.values, model.estimator.predict(x))  # type: ignore[attr-defined]
    else:
        assert np.allclose(got.probabilities, model.estimator.predict_proba(x))  # type: ignore[attr-defined]


def test_fast_path_rejects_nan(tmp_path: Path) -> None:
    manifest = train_demo_package(tmp_path / "m.dhpkg")
    model = load_model(tmp_path / "m.dhpkg")
    with pytest.raises(ModelInputError, match="NaN"):
        model.predict(Batch(manifest.feature_names, rows=[[1.0, None, 1.0, 1.0]]))


def test_other_models_and_the_switch_use_sklearn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.tree import DecisionTreeClassifier

    x = np.random.default_rng(0).normal(size=(60, 3))
    joblib.dump(DecisionTreeClassifier().fit(x, x[:, 0] > 0), tmp_path / "t.joblib")
    build_package(tmp_path / "t.joblib", "sklearn", tmp_path / "t.dhpkg")
    assert load_model(tmp_path / "t.dhpkg").fast is None  # type: ignore[attr-defined]

    train_demo_package(tmp_path / "m.dhpkg")
    monkeypatch.setenv("DECKHAND_SKLEARN_FASTPATH", "0")
    assert load_model(tmp_path / "m.dhpkg").fast is None  # type: ignore[attr-defined]

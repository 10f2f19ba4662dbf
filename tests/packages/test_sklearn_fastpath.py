"""The NumPy fast path gives scikit-learn's answers, or stays off."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest

from deckhand.packages import Batch, ModelInputError, build_package, build_package_from, load_model
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


def _boosted_package(tmp_path: Path, task: str, *, frame: bool = False, **params: object) -> tuple[Path, np.ndarray]:
    """A gradient boosting package fitted on an array (or a frame), and rows to score."""
    import pandas as pd
    from sklearn import datasets, ensemble

    load = {"regression": "load_diabetes", "binary": "load_breast_cancer", "multiclass": "load_iris"}[task]
    x, y = getattr(datasets, load)(return_X_y=True)
    kind = ensemble.GradientBoostingRegressor if task == "regression" else ensemble.GradientBoostingClassifier
    names = [f"f{i}" for i in range(x.shape[1])]
    model = kind(n_estimators=60, random_state=0, **params).fit(pd.DataFrame(x, columns=names) if frame else x, y)
    joblib.dump(model, tmp_path / "gb.joblib")
    build_package_from(tmp_path / "gb.joblib", "sklearn", tmp_path / "gb.dhpkg", target_type=task,
                       training_frame=pd.DataFrame(x, columns=names))  # fmt: skip
    return tmp_path / "gb.dhpkg", x


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
@pytest.mark.parametrize("frame", [False, True])
def test_boosted_trees_fast_path_matches_sklearn_on_every_row(tmp_path: Path, task: str, frame: bool) -> None:
    """Gradient boosting walks its trees without scikit-learn's input checks, fitted on an
    array or on a frame of the same columns (then no frame is built per request either)."""
    import pandas as pd

    path, x = _boosted_package(tmp_path, task, frame=frame)
    model = load_model(path)
    assert model.fast is not None  # type: ignore[attr-defined]
    got = model.predict(Batch(model.manifest.feature_names, array=x))
    estimator = model.estimator  # type: ignore[attr-defined]
    data = pd.DataFrame(x, columns=model.manifest.feature_names) if frame else x
    if task == "regression":
        assert np.allclose(got.values, estimator.predict(data), rtol=1e-9, atol=1e-12)
    else:
        assert np.allclose(got.probabilities, estimator.predict_proba(data), rtol=1e-9, atol=1e-12)
    with pytest.raises(ModelInputError, match="NaN"):
        model.predict(Batch(model.manifest.feature_names, array=np.full((1, x.shape[1]), np.nan)))


def test_boosted_trees_with_an_init_model_of_their_own_use_sklearn(tmp_path: Path) -> None:
    """An init estimator that depends on the input (not a constant prior) is not rebuilt."""
    from sklearn.linear_model import LinearRegression

    path, _ = _boosted_package(tmp_path, "regression", init=LinearRegression())
    assert load_model(path).fast is None  # type: ignore[attr-defined]
    path, _ = _boosted_package(tmp_path, "regression", init="zero")  # a constant: kept
    assert load_model(path).fast is not None  # type: ignore[attr-defined]

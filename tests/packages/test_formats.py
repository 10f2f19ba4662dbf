"""Each package format: build from what its library saves, load, predict like the original."""

from __future__ import annotations

import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from deckhand.packages import Batch, PackageError, build_package, load_model, read_manifest


@pytest.fixture(scope="module")
def mixed_data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.normal(50, 10, n),
            "plan": rng.choice(["basic", "pro", "team"], n),
        }
    )
    target = np.where(frame["income"] + (frame["plan"] == "pro") * 5 > 52, "churn", "stay")
    return frame, target


def _batch(frame: pd.DataFrame) -> Batch:
    return Batch(columns=list(frame.columns), rows=frame.to_numpy().tolist())


def test_sklearn_pipeline_with_categories_and_training_csv(
    tmp_path: Path, mixed_data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, target = mixed_data
    model = make_pipeline(
        make_column_transformer((StandardScaler(), ["age", "income"]), (OneHotEncoder(), ["plan"])),
        LogisticRegression(),
    ).fit(frame, target)
    joblib.dump(model, tmp_path / "model.joblib")
    frame.to_csv(tmp_path / "train.csv", index=False)

    manifest = build_package(
        tmp_path / "model.joblib",
        "sklearn",
        tmp_path / "churn.dhpkg",
        training_data=tmp_path / "train.csv",
    )
    assert manifest.target_type == "binary"
    assert manifest.class_labels == ["churn", "stay"]
    assert [(f.name, f.type) for f in manifest.features] == [
        ("age", "numeric"),
        ("income", "numeric"),
        ("plan", "categorical"),
    ]
    plan = manifest.training_summary.features["plan"]  # type: ignore[union-attr]
    assert plan.kind == "categorical" and sum(plan.counts.values()) == 200

    loaded = load_model(tmp_path / "churn.dhpkg")
    got = loaded.predict(_batch(frame.head(10))).probabilities
    assert np.allclose(got, model.predict_proba(frame.head(10)))


def test_sklearn_regression_from_array(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x = np.random.default_rng(1).normal(size=(50, 3))
    model = LinearRegression().fit(x, x @ [1.0, 2.0, 3.0])
    joblib.dump(model, tmp_path / "lr.pkl")
    manifest = build_package(tmp_path / "lr.pkl", "sklearn", tmp_path / "lr.dhpkg", name="lr")
    assert manifest.name == "lr" and manifest.target_type == "regression"
    assert manifest.feature_names == ["f0", "f1", "f2"]
    values = load_model(tmp_path / "lr.dhpkg").predict(Batch(["f0", "f1", "f2"], rows=x[:4].tolist())).values
    assert np.allclose(values, model.predict(x[:4]))


def test_target_type_contradiction_is_refused(tmp_path: Path, mixed_data) -> None:
    from sklearn.tree import DecisionTreeClassifier

    frame, target = mixed_data
    joblib.dump(DecisionTreeClassifier().fit(frame[["age", "income"]], target), tmp_path / "t.joblib")
    with pytest.raises(PackageError, match="contradicts the model, which is binary"):
        build_package(tmp_path / "t.joblib", "sklearn", tmp_path / "t.dhpkg", target_type="regression")


def test_not_a_model_is_refused(tmp_path: Path) -> None:
    joblib.dump({"weights": [1, 2]}, tmp_path / "w.joblib")
    with pytest.raises(PackageError, match="has no predict"):
        build_package(tmp_path / "w.joblib", "sklearn", tmp_path / "w.dhpkg")


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(PackageError, match="unknown format 'xgboost'"):
        build_package(tmp_path / "m.bin", "xgboost", tmp_path / "m.dhpkg")


def test_onnx_classifier(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="pip install onnxruntime (in the test extra)")
    skl2onnx = pytest.importorskip("skl2onnx", reason="pip install skl2onnx (in the test extra)")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    onx = skl2onnx.convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 4]))])
    (tmp_path / "iris.onnx").write_bytes(onx.SerializeToString())
    columns = ["sl", "sw", "pl", "pw"]
    pd.DataFrame(x, columns=columns).to_csv(tmp_path / "train.csv", index=False)

    manifest = build_package(
        tmp_path / "iris.onnx", "onnx", tmp_path / "iris.dhpkg", training_data=tmp_path / "train.csv"
    )
    assert manifest.target_type == "multiclass"
    assert manifest.class_labels == ["0", "1", "2"]
    assert manifest.feature_names == columns  # named from the training CSV
    got = load_model(tmp_path / "iris.dhpkg").predict(Batch(columns, rows=x[:5].tolist()))
    assert np.allclose(got.probabilities, model.predict_proba(x[:5]), atol=1e-5)


def test_onnx_regression(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="pip install onnxruntime (in the test extra)")
    skl2onnx = pytest.importorskip("skl2onnx", reason="pip install skl2onnx (in the test extra)")
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import Ridge

    x = np.random.default_rng(2).normal(size=(40, 2)).astype(np.float32)
    model = Ridge().fit(x, x[:, 0] - x[:, 1])
    onx = skl2onnx.convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 2]))])
    (tmp_path / "r.onnx").write_bytes(onx.SerializeToString())
    manifest = build_package(tmp_path / "r.onnx", "onnx", tmp_path / "r.dhpkg")
    assert manifest.target_type == "regression"
    got = load_model(tmp_path / "r.dhpkg").predict(Batch(["f0", "f1"], rows=x[:3].tolist()))
    assert np.allclose(got.values, model.predict(x[:3]), atol=1e-5)


@pytest.mark.slow
def test_mlflow_pyfunc(tmp_path: Path) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn", reason="pip install mlflow-skinny (in the test extra)")
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris(as_frame=True)
    frame = data.data.set_axis(["a", "b", "c", "d"], axis=1)
    model = LogisticRegression(max_iter=500).fit(frame, data.target)
    mlflow_sklearn.save_model(
        model,
        str(tmp_path / "mlmodel"),
        signature=infer_signature(frame),
        pyfunc_predict_fn="predict_proba",
        serialization_format="cloudpickle",
    )
    manifest = build_package(tmp_path / "mlmodel", "mlflow", tmp_path / "ml.dhpkg")
    assert manifest.format == "mlflow" and manifest.target_type == "multiclass"
    assert manifest.feature_names == ["a", "b", "c", "d"]
    assert "MLmodel" in manifest.payload_files
    got = load_model(tmp_path / "ml.dhpkg").predict(_batch(frame.head(4)))
    assert np.allclose(got.probabilities, model.predict_proba(frame.head(4)))


def test_mlflow_needs_an_mlmodel_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(PackageError, match="no MLmodel file"):
        build_package(tmp_path / "dir", "mlflow", tmp_path / "x.dhpkg")


HOOKS = textwrap.dedent(
    """
    import json, os
    import pandas as pd
    from helper import SCALE

    def load_model(code_dir):
        with open(os.path.join(code_dir, "weights.json")) as fh:
            return json.load(fh)

    def transform(data, model):
        return data * SCALE

    def score(data, model, **kwargs):
        total = sum(data[name] * w for name, w in model.items())
        p = 1 / (1 + (-total).map(__import__("math").exp))
        return pd.DataFrame({"yes": p, "no": 1 - p})
    """
)


def test_python_hooks_directory(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "custom.py").write_text(HOOKS)
    (code / "helper.py").write_text("SCALE = 2.0\n")
    (code / "weights.json").write_text('{"x": 1.0, "y": -1.0}')
    with pytest.raises(PackageError, match="--target-type"):
        build_package(code, "python", tmp_path / "p.dhpkg")
    manifest = build_package(code, "python", tmp_path / "p.dhpkg", target_type="binary", class_labels=["no", "yes"])
    assert manifest.features == []  # schema-less: takes the request's columns
    assert read_manifest(tmp_path / "p.dhpkg").payload_files == ["custom.py", "helper.py", "weights.json"]
    got = load_model(tmp_path / "p.dhpkg").predict(Batch(["x", "y"], rows=[[1.0, 0.0], [0.0, 1.0]]))
    expected_yes = 1 / (1 + np.exp([-2.0, 2.0]))
    assert np.allclose(got.probabilities[:, 1], expected_yes)
    assert np.allclose(got.probabilities[:, 0], 1 - expected_yes)


def test_python_hook_without_score_is_refused(tmp_path: Path) -> None:
    (tmp_path / "custom.py").write_text("def load_model(d):\n    return 1\n")
    with pytest.raises(PackageError, match="score"):
        build_package(tmp_path, "python", tmp_path / "p.dhpkg", target_type="regression")

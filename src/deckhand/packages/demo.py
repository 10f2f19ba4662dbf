"""A small demo model trained on data bundled with scikit-learn (no download).

`train_demo_package` is what the quickstart and many tests deploy; `sample_rows` gives
valid input rows for it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from deckhand.packages.manifest import Manifest

DemoTask = Literal["multiclass", "binary", "regression"]

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


def _dataset(task: DemoTask) -> tuple[Any, Any, list[str], list[str] | None]:
    from sklearn import datasets

    if task == "multiclass":
        data = datasets.load_iris()
        labels = [IRIS_CLASSES[i] for i in data.target]
        return data.data, labels, IRIS_FEATURES, IRIS_CLASSES
    if task == "binary":
        data = datasets.load_breast_cancer()
        names = [n.replace(" ", "_") for n in data.feature_names]
        labels = ["malignant" if t == 0 else "benign" for t in data.target]
        return data.data, labels, names, ["benign", "malignant"]
    if task == "regression":
        data = datasets.load_diabetes()
        return data.data, data.target, list(data.feature_names), None
    raise ValueError(f"task {task!r}: expected multiclass, binary or regression")


def train_demo_package(
    output: Path, *, seed: int = 0, task: DemoTask = "multiclass", name: str | None = None
) -> Manifest:
    """Train a small model (iris by default) and package it to `output`."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deckhand.packages.builder import build_package_from

    x, y, names, _ = _dataset(task)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    x, y = x[order], np.asarray(y)[order]
    if task == "regression":
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0, random_state=seed))
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
    model.fit(x, y)  # arrays, so predict() takes arrays (no per-request DataFrame)
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="deckhand-demo-") as tmp:
        model_path = Path(tmp) / "model.joblib"
        joblib.dump(model, model_path)
        return build_package_from(
            model_path,
            "sklearn",
            output,
            name=name or f"demo-{task}",
            training_frame=pd.DataFrame(x, columns=names),
        )


def sample_rows(n: int, *, task: DemoTask = "multiclass", seed: int = 0) -> list[dict[str, float]]:
    """n valid input rows for the demo model (drawn from its training data)."""
    import numpy as np

    x, _, names, _ = _dataset(task)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(x), size=n)
    return [{name: float(v) for name, v in zip(names, x[i], strict=True)} for i in picks]

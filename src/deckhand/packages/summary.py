"""Per-feature baseline of training data (histograms and value counts) for drift checks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deckhand.packages.errors import PackageError
from deckhand.packages.manifest import (
    CategoricalSummary,
    Feature,
    NumericSummary,
    TrainingSummary,
)

if TYPE_CHECKING:
    import pandas as pd

NUMERIC_BINS = 10
MAX_CATEGORIES = 50


def read_training_csv(path: Path) -> pd.DataFrame:
    """Read a comma-delimited training CSV, with an error that names the file."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError as exc:
        raise PackageError(f"--training-data {path}: no such file") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise PackageError(f"--training-data {path}: not a readable CSV ({exc})") from exc


def infer_features(frame: pd.DataFrame) -> list[Feature]:
    """Numeric columns become numeric features, everything else categorical."""
    import pandas as pd

    return [
        Feature(
            name=str(col),
            type="numeric"
            if pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col])
            else "categorical",
        )
        for col in frame.columns
    ]


def _numeric(values: np.ndarray) -> NumericSummary:
    finite = values[np.isfinite(values)]
    missing = int(values.size - finite.size)
    if finite.size == 0:
        return NumericSummary(edges=[0.0, 1.0], counts=[0], missing=missing)
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, NUMERIC_BINS + 1)))
    if edges.size < 2:  # a constant column
        edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
    counts, _ = np.histogram(finite, bins=edges)
    return NumericSummary(edges=[float(e) for e in edges], counts=[int(c) for c in counts], missing=missing)


def _categorical(column: pd.Series) -> CategoricalSummary:
    missing = int(column.isna().sum())
    counts = column.dropna().astype(str).value_counts()
    top = counts.iloc[:MAX_CATEGORIES]
    return CategoricalSummary(
        counts={str(k): int(v) for k, v in top.items()},
        other=int(counts.iloc[MAX_CATEGORIES:].sum()),
        missing=missing,
    )


def summarize(frame: pd.DataFrame, features: list[Feature]) -> TrainingSummary:
    """Summarise the given features of `frame`; a feature missing from it is an error."""
    import pandas as pd

    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        raise PackageError(
            f"training data lacks the model's features {missing}; its columns are {list(frame.columns)[:20]}"
        )
    per_feature: dict[str, NumericSummary | CategoricalSummary] = {}
    for feature in features:
        column = frame[feature.name]
        if feature.type == "numeric":
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            per_feature[feature.name] = _numeric(values)
        else:
            per_feature[feature.name] = _categorical(column)
    return TrainingSummary(rows=len(frame), features=per_feature)

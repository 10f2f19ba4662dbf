"""What a loaded model looks like to the prediction server: rows in, predictions out.

`Batch` carries input rows in the manifest's feature order in one of three forms: a 2-D
array (what the codecs build for all-numeric CSV and JSON and what typed tensors of the
Open Inference Protocol decode to: no Python object per cell, and what scikit-learn
wants), plain Python rows (input with strings or missing values), or a DataFrame (what
the CSV reader produces for large bodies). Each format's adapter converts it to what its
library wants: a float array when it can, a DataFrame only when it must.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from deckhand.packages.manifest import Manifest

if TYPE_CHECKING:
    import pandas as pd


class ModelInputError(ValueError):
    """The request's data does not fit the model (a user error, not a server fault)."""


@dataclass
class Batch:
    """Input rows; `columns` are the model's feature names, in order."""

    columns: list[str]
    rows: list[list[Any]] | None = None
    frame: pd.DataFrame | None = None
    array: np.ndarray | None = None  # (rows, len(columns))

    def __len__(self) -> int:
        if self.frame is not None:
            return len(self.frame)
        if self.array is not None:
            return len(self.array)
        return len(self.rows or [])

    def to_array(self, dtype: Any = float) -> np.ndarray:
        """All columns as one 2-D array; a value that is not a number is a ModelInputError."""
        try:
            if self.frame is not None:
                return self.frame.to_numpy(dtype=dtype)
            if self.array is not None:
                return self.array.astype(dtype, copy=False)
            array = np.array(self.rows, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise ModelInputError(self._first_non_number() or f"input has a non-numeric value: {exc}") from exc
        if array.ndim != 2:
            array = array.reshape(len(self), len(self.columns))
        return array

    def _first_non_number(self) -> str | None:
        """Where the first value that is not a number is (only on the error path)."""
        records = self.frame.itertuples(index=False) if self.frame is not None else self._row_lists()
        for index, row in enumerate(records):
            for name, value in zip(self.columns, row, strict=False):
                try:
                    float(value)
                except (TypeError, ValueError):
                    return f"row {index}, feature {name!r}: {value!r} is not a number"
        return None

    def slice(self, start: int, stop: int) -> Batch:
        """Rows start..stop (a view where the storage allows it)."""
        if self.frame is not None:
            return Batch(columns=self.columns, frame=self.frame.iloc[start:stop])
        if self.array is not None:
            return Batch(columns=self.columns, array=self.array[start:stop])
        return Batch(columns=self.columns, rows=(self.rows or [])[start:stop])

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        if self.frame is not None:
            return self.frame
        return pd.DataFrame(self.array if self.array is not None else self.rows, columns=self.columns)

    def head_records(self, n: int) -> list[dict[str, Any]]:
        """The first n rows as {feature: value} dicts (the monitoring feature sample)."""
        if self.frame is not None:
            return self.frame.head(n).to_dict(orient="records")
        return [dict(zip(self.columns, row, strict=False)) for row in self._row_lists(n)]

    def _row_lists(self, n: int | None = None) -> list[list[Any]]:
        """The first n rows (all: None) as Python lists; not for the frame form."""
        if self.array is not None:
            return self.array[:n].tolist()
        return (self.rows or [])[:n]

    @staticmethod
    def concat(batches: Sequence[Batch]) -> Batch:
        """One batch holding the rows of all, in order (same columns assumed)."""
        if len(batches) == 1:
            return batches[0]
        if all(b.array is not None for b in batches):
            return Batch(columns=batches[0].columns, array=np.concatenate([b.array for b in batches]))  # type: ignore[misc]
        if all(b.frame is None for b in batches):  # rows, and small arrays from concurrent requests
            rows: list[list[Any]] = []
            for b in batches:
                rows.extend(b._row_lists())
            return Batch(columns=batches[0].columns, rows=rows)
        import pandas as pd

        return Batch(
            columns=batches[0].columns,
            frame=pd.concat([b.to_frame() for b in batches], ignore_index=True),
        )


@dataclass
class Predictions:
    """Model output for n rows.

    Regression: `values` holds n floats. Classification: `probabilities` holds an (n, k)
    array in `manifest.class_labels` order (values are derived from it by the server).
    """

    values: np.ndarray | None = None
    probabilities: np.ndarray | None = None

    def __len__(self) -> int:
        data = self.values if self.values is not None else self.probabilities
        return 0 if data is None else len(data)

    def slice(self, start: int, stop: int) -> Predictions:
        return Predictions(
            values=None if self.values is None else self.values[start:stop],
            probabilities=None if self.probabilities is None else self.probabilities[start:stop],
        )


@dataclass
class LoadedModel:
    """A model ready to predict. Adapters subclass it and implement `_predict`."""

    manifest: Manifest
    resources: list[Any] = field(default_factory=list)

    def predict(self, batch: Batch) -> Predictions:
        """Predict `batch`; checks the shape of what the adapter returned."""
        result = self._predict(batch)
        if len(result) != len(batch):
            raise RuntimeError(f"the model returned {len(result)} predictions for {len(batch)} rows")
        return result

    def _predict(self, batch: Batch) -> Predictions:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release what the model holds (temporary directories, sessions)."""
        for resource in self.resources:
            cleanup = getattr(resource, "cleanup", None)
            if cleanup is not None:
                cleanup()
        self.resources.clear()


def labels_to_probabilities(labels: Sequence[Any] | np.ndarray, class_labels: list[str]) -> np.ndarray:
    """One-hot probabilities for a model that only returns labels."""
    index = {label: i for i, label in enumerate(class_labels)}
    out = np.zeros((len(labels), len(class_labels)))
    for row, label in enumerate(labels):
        key = str(label)
        if key not in index:
            raise RuntimeError(
                f"the model predicted class {key!r}, which is not in the manifest's class_labels {class_labels}"
            )
        out[row, index[key]] = 1.0
    return out


def output_to_predictions(output: Any, manifest: Manifest) -> Predictions:
    """Turn what a generic model returned (array, Series, DataFrame, list) into Predictions.

    Classification: a DataFrame with one column per class label, or an (n, k) array, is
    read as probabilities; a 1-D output as predicted labels. Regression: a 1-D output,
    an (n, 1) array, or a DataFrame with a `Predictions` column.
    """
    import pandas as pd

    labels = manifest.class_labels or []
    if isinstance(output, pd.DataFrame):
        if labels and all(label in output.columns for label in labels):
            return Predictions(probabilities=output[labels].to_numpy(dtype=float))
        if labels and all(str(c) in labels for c in output.columns) and output.shape[1] > 1:
            output = output.rename(columns=str)
            return Predictions(probabilities=output[labels].to_numpy(dtype=float))
        for name in ("Predictions", "prediction", "predictions"):
            if name in output.columns:
                output = output[name]
                break
        else:
            if output.shape[1] != 1:
                raise RuntimeError(
                    f"the model returned a DataFrame with columns {list(output.columns)}; "
                    f"expected one column per class label {labels} or a 'Predictions' column"
                )
            output = output.iloc[:, 0]
    array = np.asarray(output)
    if labels:
        if array.ndim == 2 and array.shape[1] == len(labels):
            return Predictions(probabilities=array.astype(float))
        return Predictions(probabilities=labels_to_probabilities(array.ravel(), labels))
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise RuntimeError(f"a regression model must return one value per row, got shape {array.shape}")
    return Predictions(values=array.astype(float))

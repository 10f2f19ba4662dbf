"""The demo package is quick to make and its sample rows are valid input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deckhand.packages import Batch, load_model
from deckhand.packages.demo import sample_rows, train_demo_package


def test_demo_package_is_quick_and_predicts(tmp_path: Path) -> None:
    import sklearn.linear_model  # noqa: F401  (import time is not the demo's cost)

    started = time.perf_counter()
    manifest = train_demo_package(tmp_path / "demo.dhpkg", seed=1)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"demo package took {elapsed:.2f}s"
    model = load_model(tmp_path / "demo.dhpkg")
    rows = sample_rows(5)
    batch = Batch(manifest.feature_names, rows=[[r[f] for f in manifest.feature_names] for r in rows])
    probabilities = model.predict(batch).probabilities
    assert probabilities is not None and probabilities.shape == (5, 3)
    assert probabilities.sum(axis=1) == pytest.approx([1.0] * 5)


@pytest.mark.parametrize("task,labels", [("binary", 2), ("regression", 0)])
def test_other_demo_tasks(tmp_path: Path, task: str, labels: int) -> None:
    manifest = train_demo_package(tmp_path / f"{task}.dhpkg", task=task)  # type: ignore[arg-type]
    assert manifest.target_type == task
    assert len(manifest.class_labels or []) == labels
    rows = sample_rows(3, task=task)  # type: ignore[arg-type]
    assert set(rows[0]) == set(manifest.feature_names)


def test_sample_rows_are_deterministic() -> None:
    assert sample_rows(4, seed=3) == sample_rows(4, seed=3)
    assert len(sample_rows(7)) == 7

"""Drift against a package's training summary: data drawn from the training set itself
must not look drifted (its edges sit on data values, which the sketch must respect)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from deckhand.monitoring import sketch
from deckhand.monitoring.drift import PSI_WARNING, feature_drift
from deckhand.packages.demo import sample_rows


def test_rows_from_the_training_data_show_no_drift(demo_package: Path) -> None:
    package = demo_package
    with zipfile.ZipFile(package) as archive:
        features = json.loads(archive.read("manifest.json"))["training_summary"]["features"]
    rows = sample_rows(2000, seed=3)
    for name, baseline in features.items():
        counts: dict[str, int] = {}
        sketch.add_values(counts, [row[name] for row in rows])
        drift = feature_drift(name, baseline, {"num": counts})
        assert drift is not None and drift.psi < PSI_WARNING, (name, drift)


def test_a_value_on_an_edge_goes_right_as_in_numpy() -> None:
    counts: dict[str, int] = {}
    sketch.add_values(counts, [0.2, 0.2, 1.3, 1.29])
    assert sketch.histogram(counts, [0.1, 0.2, 1.3, 2.5]) == [0, 3, 1]

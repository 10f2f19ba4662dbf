"""Feature drift: the population stability index (PSI) of current values against a baseline.

Pure computation (no database, no HTTP). A baseline feature is either a package's
training summary (`{"kind": "numeric", "edges", "counts"}` or `{"kind": "categorical",
"counts", "other"}`) or a wire distribution (`{"num", "cat", "missing"}`, see
`deckhand.monitoring.aggregate`); the current values are always a wire distribution.

Numeric features are binned by the baseline's edges (a wire baseline: its deciles);
categorical ones by the baseline's categories plus `__other__`. PSI = sum over the bins
of (current - baseline) * ln(current / baseline), shares floored at PSI_FLOOR; status
`ok` < PSI_WARNING <= `warning` < PSI_DRIFT <= `drift`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from deckhand.monitoring import sketch
from deckhand.monitoring.aggregate import OTHER

PSI_WARNING = 0.1
PSI_DRIFT = 0.25
PSI_FLOOR = 1e-4
NUMERIC_BINS = 10  # a wire baseline's numeric bins: its deciles

Status = Literal["ok", "warning", "drift"]
Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's PSI and the shares it was computed from, bin by bin."""

    name: str
    kind: Kind
    psi: float
    status: Status
    bins: list[str]
    baseline_share: list[float]
    current_share: list[float]
    baseline_count: int
    current_count: int


@dataclass(frozen=True)
class DriftReport:
    """Every baseline feature: drift where the current window has values, else its name."""

    features: list[FeatureDrift] = field(default_factory=list)
    features_without_data: list[str] = field(default_factory=list)


def psi(baseline: Sequence[float], current: Sequence[float]) -> float:
    """PSI of two share vectors of equal length (each share floored at PSI_FLOOR)."""
    value = 0.0
    for b, c in zip(baseline, current, strict=True):
        b, c = max(b, PSI_FLOOR), max(c, PSI_FLOOR)
        value += (c - b) * math.log(c / b)
    return value


def drift_status(value: float) -> Status:
    return "ok" if value < PSI_WARNING else ("warning" if value < PSI_DRIFT else "drift")


def shares(counts: Sequence[int]) -> list[float]:
    """Counts as fractions of their sum (all 0.0 when the sum is 0)."""
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _is_numeric(base: Mapping[str, Any]) -> bool:
    return base.get("kind") == "numeric" or bool(base.get("num") and not base.get("cat"))


def _numeric_bins(base: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[list[str], list[int], list[int]]:
    if base.get("kind") == "numeric":
        edges = [float(e) for e in base["edges"]]
        base_counts = [int(c) for c in base["counts"]]
    else:
        edges = sketch.quantile_edges(base["num"], NUMERIC_BINS)
        base_counts = sketch.histogram(base["num"], edges)
    current_counts = sketch.histogram(current.get("num") or {}, edges)
    labels = [f"{_fmt(edges[i])}..{_fmt(edges[i + 1])}" for i in range(len(edges) - 1)]
    return labels, base_counts, current_counts


def _categorical_bins(base: Mapping[str, Any], current: Mapping[str, Any]) -> tuple[list[str], list[int], list[int]]:
    if base.get("kind") == "categorical":
        base_map = dict(base.get("counts") or {})
        if base.get("other"):
            base_map[OTHER] = int(base["other"])
    else:
        base_map = dict(base.get("cat") or {})
    labels = list(base_map)
    if OTHER not in labels:
        labels.append(OTHER)
    current_map = dict(current.get("cat") or {})
    for value, n in sketch.sorted_buckets(current.get("num") or {}):  # numbers seen as categories
        key = f"{value:g}"
        current_map[key] = current_map.get(key, 0) + n
    base_counts = [int(base_map.get(label, 0)) for label in labels]
    current_counts = [0] * len(labels)
    for key, n in current_map.items():
        current_counts[labels.index(key) if key in labels else labels.index(OTHER)] += n
    return labels, base_counts, current_counts


def feature_drift(name: str, base: Mapping[str, Any], current: Mapping[str, Any]) -> FeatureDrift | None:
    """One feature's drift; None when `current` holds no value that falls in a bin.

    A baseline without any count has PSI 0 (nothing to compare against)."""
    kind: Kind = "numeric" if _is_numeric(base) else "categorical"
    labels, base_counts, current_counts = (
        _numeric_bins(base, current) if kind == "numeric" else _categorical_bins(base, current)
    )
    if sum(current_counts) == 0:
        return None
    base_share, current_share = shares(base_counts), shares(current_counts)
    value = psi(base_share, current_share) if sum(base_counts) else 0.0
    return FeatureDrift(
        name=name,
        kind=kind,
        psi=round(value, 6),
        status=drift_status(value),
        bins=labels,
        baseline_share=base_share,
        current_share=current_share,
        baseline_count=sum(base_counts),
        current_count=sum(current_counts),
    )


def compare(baseline: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]]) -> DriftReport:
    """Drift of every baseline feature, in the baseline's order (features only in `current` are ignored)."""
    report = DriftReport()
    for name, base in baseline.items():
        result = feature_drift(name, base, current.get(name, {}))
        if result is None:
            report.features_without_data.append(name)
        else:
            report.features.append(result)
    return report


__all__ = [
    "PSI_DRIFT",
    "PSI_FLOOR",
    "PSI_WARNING",
    "DriftReport",
    "FeatureDrift",
    "compare",
    "drift_status",
    "feature_drift",
    "psi",
    "shares",
]

"""Turn the accuracy API's JSON into the deployment page's Accuracy panel: a line per model
of its main metric per hour, and a table per model of its totals.

A pure function over the documented response shape (`GET .../accuracy`, docs/accuracy.md),
so it is tested without a server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup

from deckhand.server.services.accuracy.metrics import BINARY, METRIC_NAMES, MULTICLASS, REGRESSION
from deckhand.server.ui.charts import Series, line_chart
from deckhand.server.ui.panels import parse_time

# One point per hour of prediction time, whatever the page's window.
BUCKET_SECONDS = 3600
MAX_POINTS = 24 * 31
# The metric drawn for each kind of model, and how it reads.
MAIN_METRIC = {REGRESSION: "rmse", BINARY: "auc", MULTICLASS: "accuracy"}
METRIC_LABELS = {
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
    "accuracy": "Accuracy",
    "auc": "AUC",
    "logLoss": "Log loss",
    "precision": "Precision",
    "recall": "Recall",
}
READING = {REGRESSION: "lower is better", BINARY: "higher is better", MULTICLASS: "higher is better"}
# CSS classes of the other models' lines, in turn (ui.css); the champion's is CHAMPION_CSS.
CHAMPION_CSS = "s-champion"
OTHER_CSS = ("s-model-1", "s-model-2", "s-model-3", "s-model-4")


def format_metric(value: float | None) -> str:
    """A metric as the panel's tables show it: 4 decimals, or a dash when it is undefined."""
    return "—" if value is None else f"{value:.4f}"


def _chart_value(value: float) -> str:
    return f"{value:.4g}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class MetricCell:
    key: str
    label: str
    value: float | None

    @property
    def text(self) -> str:
        return format_metric(self.value)


@dataclass(frozen=True)
class ModelAccuracy:
    """One model's totals over the window: matched predictions and every metric of its kind."""

    model_id: str
    champion: bool
    kind: str
    matched: int
    metrics: list[MetricCell]
    name: str | None = None


@dataclass
class AccuracyPanel:
    models: list[ModelAccuracy]
    charts: list[Markup] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.models


def _metric_keys(kind: str, given: dict[str, Any]) -> list[str]:
    """The metrics of `kind` in their documented order, then any other the API gave."""
    known = list(METRIC_NAMES.get(kind, ()))
    return known + [k for k in given if k not in known]


def accuracy_panel(report: dict[str, Any] | None, names: dict[str, str] | None = None) -> AccuracyPanel:
    """From `GET .../accuracy?bucketSeconds=3600`: the champion first, one chart per kind of
    model (usually one) with a line per model of its main metric, one point per hour."""
    names = names or {}
    raw = [m for m in (report or {}).get("models") or [] if isinstance(m, dict) and isinstance(m.get("modelId"), str)]
    raw.sort(key=lambda m: not m.get("champion"))  # stable: the API's order otherwise
    models = []
    for item in raw:
        kind = str(item.get("kind") or "")
        given = item.get("metrics") if isinstance(item.get("metrics"), dict) else {}
        cells = [MetricCell(k, METRIC_LABELS.get(k, k), _number(given.get(k))) for k in _metric_keys(kind, given)]
        models.append(
            ModelAccuracy(
                model_id=item["modelId"],
                champion=bool(item.get("champion")),
                kind=kind,
                matched=int(_number(item.get("matched")) or 0),
                metrics=cells,
                name=names.get(item["modelId"]),
            )
        )
    panel = AccuracyPanel(models)
    if models:
        panel.charts = _charts(report or {}, raw)
    return panel


def _grid(report: dict[str, Any]) -> tuple[datetime, int, int] | None:
    """The window's first hour, the step and the number of hours, from the report."""
    start, end = parse_time(report.get("start")), parse_time(report.get("end"))
    step = int(_number(report.get("bucketSeconds")) or BUCKET_SECONDS)
    if start is None or end is None or step <= 0:
        return None
    count = max(1, min(math.ceil((end - start).total_seconds() / step), MAX_POINTS))
    return start, step, count


def _charts(report: dict[str, Any], raw: list[dict[str, Any]]) -> list[Markup]:
    grid = _grid(report)
    if grid is None:
        return []
    start, step, count = grid
    times = [start + timedelta(seconds=i * step) for i in range(count)]
    charts = []
    for kind, key in MAIN_METRIC.items():
        of_kind = [m for m in raw if m.get("kind") == kind]
        if not of_kind:
            continue
        series = []
        others = 0
        for item in of_kind:
            values: list[float | None] = [None] * count
            for bucket in item.get("buckets") or []:
                moment = parse_time(bucket.get("start")) if isinstance(bucket, dict) else None
                if moment is None:
                    continue
                index = round((moment - start).total_seconds() / step)
                if 0 <= index < count:
                    values[index] = _number((bucket.get("metrics") or {}).get(key))
            if item.get("champion"):
                css = CHAMPION_CSS
            else:
                css = OTHER_CSS[others % len(OTHER_CSS)]
                others += 1
            series.append(Series(item["modelId"], values, css))
        label = METRIC_LABELS[key]
        title = f"{label} per hour ({kind}; {READING[kind]})"
        charts.append(line_chart(f"accuracy-{kind}", title, times, series, fmt=_chart_value))
    return charts

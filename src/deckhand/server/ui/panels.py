"""Turn the monitoring API's JSON into what the deployment page shows: totals and charts.

Pure functions over the documented response shapes (service health, drift, prediction
distribution), so they are tested without a server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup

from deckhand.monitoring.drift import PSI_DRIFT, PSI_WARNING
from deckhand.server.ui.charts import (
    Bar,
    Series,
    bar_chart,
    distribution_chart,
    format_count,
    format_ms,
    line_chart,
)


@dataclass(frozen=True)
class Window:
    """A time range the page offers: its key in the URL, its length and its bucket size."""

    key: str
    label: str
    seconds: int
    bucket_seconds: int


# The monitoring API stores one bucket per minute: bucket sizes are multiples of 60 s.
WINDOWS: tuple[Window, ...] = (
    Window("15m", "15 minutes", 15 * 60, 60),
    Window("1h", "1 hour", 3600, 60),
    Window("6h", "6 hours", 6 * 3600, 300),
    Window("24h", "24 hours", 24 * 3600, 900),
)
DEFAULT_WINDOW = "1h"
# Used only when the drift answer carries no `thresholds` (the API's own values win).
PSI_THRESHOLDS = {"warning": PSI_WARNING, "drift": PSI_DRIFT}


def find_window(key: str | None) -> Window:
    for window in WINDOWS:
        if window.key == key:
            return window
    return next(w for w in WINDOWS if w.key == DEFAULT_WINDOW)


def window_range(window: Window, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) ending at the next bucket boundary, so the last bucket is the current one."""
    now = now or datetime.now(UTC)
    step = window.bucket_seconds
    end_ts = math.ceil(now.timestamp() / step) * step
    if end_ts == now.timestamp():
        end_ts += step
    end = datetime.fromtimestamp(end_ts, UTC)
    return end - timedelta(seconds=window.seconds), end


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _number(value: Any) -> float | None:
    """A JSON number as it came (ints stay ints), or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


@dataclass
class HealthPanel:
    """Service health of one window: totals (None when unknown) and the four charts."""

    totals: dict[str, float | None]
    charts: list[Markup] = field(default_factory=list)
    bucket_count: int = 0

    @property
    def has_traffic(self) -> bool:
        return bool(self.totals.get("requests"))


TOTAL_KEYS = ("requests", "rows", "userErrors", "systemErrors", "latencyP50Ms", "latencyP99Ms")


def health_panel(health: dict[str, Any]) -> HealthPanel:
    """Charts for requests, latency p50/p99 and errors, one point per bucket (empty buckets filled in)."""
    raw_totals = health.get("totals") or {}
    totals = {key: _number(raw_totals.get(key)) for key in TOTAL_KEYS}
    step = int(_number(health.get("bucketSeconds")) or 60)
    buckets = [b for b in health.get("buckets") or [] if isinstance(b, dict)]
    by_start: dict[int, dict[str, Any]] = {}
    for bucket in buckets:
        moment = parse_time(bucket.get("start"))
        if moment is not None:
            by_start[int(moment.timestamp())] = bucket
    start = parse_time(health.get("start"))
    end = parse_time(health.get("end"))
    if start is None or end is None:
        keys = sorted(by_start)
        start = datetime.fromtimestamp(keys[0], UTC) if keys else datetime.now(UTC)
        end = datetime.fromtimestamp(keys[-1] + step, UTC) if keys else start
    count = max(1, min(math.ceil((end - start).total_seconds() / step), 10_000))
    times = [start + timedelta(seconds=i * step) for i in range(count)]
    # Buckets the API returned but that do not fall on our grid still count, in the nearest slot.
    rows: list[dict[str, Any]] = [{} for _ in times]
    for ts, bucket in by_start.items():
        index = round((ts - start.timestamp()) / step)
        if 0 <= index < count:
            rows[index] = bucket

    def counts(key: str) -> list[float | None]:
        return [_number(r.get(key)) or 0.0 for r in rows]

    def latency(key: str) -> list[float | None]:
        return [_number(r.get(key)) if _number(r.get("requests")) else None for r in rows]

    charts = [
        line_chart("requests", "Requests", times, [Series("requests", counts("requests"), "s-requests")]),
        line_chart(
            "latency",
            "Latency",
            times,
            [Series("p50", latency("latencyP50Ms"), "s-p50"), Series("p99", latency("latencyP99Ms"), "s-p99")],
            fmt=format_ms,
        ),
        line_chart(
            "errors",
            "Errors",
            times,
            [
                Series("user errors (4xx)", counts("userErrors"), "s-user-errors"),
                Series("system errors (5xx)", counts("systemErrors"), "s-system-errors"),
            ],
        ),
    ]
    return HealthPanel(totals=totals, charts=charts, bucket_count=count)


@dataclass
class DriftFeature:
    name: str
    psi: float | None
    status: str
    chart: Markup | None


@dataclass
class DriftPanel:
    baseline: str
    summary: Markup | None
    features: list[DriftFeature]


def _baseline_text(drift: dict[str, Any]) -> str:
    baseline = drift.get("baseline")
    if baseline == "package":
        return "the training data summary stored in the model package"
    if baseline == "first-window":
        start, end = parse_time(drift.get("baselineStart")), parse_time(drift.get("baselineEnd"))
        if start and end:
            return f"the first hour of data ({start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC)"
        return "the first hour of data"
    return str(baseline) if baseline else ""


def _bin_labels(bins: Any, count: int) -> list[str]:
    if isinstance(bins, list) and len(bins) == count:
        return [str(b) if not isinstance(b, float) else f"{b:.3g}" for b in bins]
    if isinstance(bins, list) and len(bins) == count + 1 and all(_number(b) is not None for b in bins):
        return [f"{float(lo):.3g}–{float(hi):.3g}" for lo, hi in zip(bins[:-1], bins[1:], strict=True)]
    return [str(i + 1) for i in range(count)]


def drift_panel(drift: dict[str, Any]) -> DriftPanel:
    """PSI per feature as bars (threshold lines at 0.1 and 0.25), and each feature's bin shares."""
    features: list[DriftFeature] = []
    for item in drift.get("features") or []:
        if not isinstance(item, dict):
            continue
        name = str(item.get("name", "?"))
        psi = _number(item.get("psi"))
        status = str(item.get("status") or "unknown")
        baseline = [_number(v) for v in item.get("baselineShare") or []]
        current = [_number(v) for v in item.get("currentShare") or []]
        chart = None
        if baseline or current:
            size = max(len(baseline), len(current))
            chart = distribution_chart(
                f"drift-{len(features)}",
                f"{name}: share of values per bin",
                _bin_labels(item.get("bins"), size),
                [Series("baseline", baseline, "s-baseline"), Series("current", current, "s-current")],
            )
        features.append(DriftFeature(name, psi, status, chart))
    bars = [Bar(f.name, f.psi, f.status) for f in features if f.psi is not None]
    limits = {**PSI_THRESHOLDS, **{k: v for k, v in (drift.get("thresholds") or {}).items() if _number(v) is not None}}
    warning, drifted = float(limits["warning"]), float(limits["drift"])
    summary = (
        bar_chart(
            "drift",
            "Drift per feature (PSI)",
            bars,
            thresholds=(warning, drifted),
            note=f"PSI below {warning:g}: stable; {warning:g} to {drifted:g}: some shift; above {drifted:g}: drifted.",
        )
        if bars
        else None
    )
    return DriftPanel(_baseline_text(drift), summary, features)


def predictions_panel(data: dict[str, Any]) -> Markup | None:
    """The prediction distribution as bars, from whichever list of {label/bin, count/share} the API gives."""
    entries = None
    for key in ("classes", "bins", "distribution", "histogram", "buckets"):
        value = data.get(key)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            entries = value
            break
    if not entries:
        return None
    labels: list[str] = []
    values: list[float | None] = []
    for i, entry in enumerate(entries):
        label = entry.get("label", entry.get("class", entry.get("name")))
        if label is None and "start" in entry and "end" in entry:
            label = f"{entry['start']:.3g}–{entry['end']:.3g}" if _number(entry["start"]) is not None else None
        labels.append(str(label if label is not None else i + 1))
        values.append(_number(entry.get("count", entry.get("share", entry.get("value")))))
    fmt = format_count if all(v is None or v == int(v) for v in values) else None
    series = [Series("predictions", values, "s-requests")]
    if fmt is None:
        return distribution_chart("predictions", "Prediction distribution", labels, series)
    return distribution_chart("predictions", "Prediction distribution", labels, series, fmt=fmt)

"""Turn the rollout and per-model monitoring JSON into the deployment page's Rollout and Models panels.

Pure functions over the documented response shapes (`GET .../rollouts`, `GET .../challengers`,
`GET .../monitoring/models`, docs/rollouts.md), so they are tested without a server.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from deckhand.server.schemas.rollouts import RUNNING
from deckhand.server.services.rollouts import GATE_UNITS
from deckhand.server.ui.charts import Bar, bar_chart, format_count, format_ms, split_bar

ENDED_SHOWN = 5
MIN_REQUESTS = "minRequests"
GATE_LABELS = {**GATE_UNITS, MIN_REQUESTS: "candidate requests"}
# What a gate's verdict means to a person; "unknown" is split by why (see `_verdict`).
WAITING = "waiting for traffic"
NO_DATA = "no data yet"
NOT_JUDGED = "not judged yet"


def format_percent(value: float) -> str:
    return f"{value:.1%}" if value < 0.1 else f"{value:.0%}"


def _plain(value: float) -> str:
    return f"{value:.3g}"


GATE_FORMATS: dict[str, Callable[[float], str]] = {
    "maxErrorRate": format_percent,
    "maxP99Ms": format_ms,
    "maxPsi": _plain,
    MIN_REQUESTS: format_count,
}


def duration(seconds: int) -> str:
    """300 -> "5 min"; 90 -> "90 s"; 7200 -> "2 h"."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class GateRow:
    gate: str
    label: str
    limit: str
    value: str
    verdict: str  # pass, fail, or one of WAITING / NO_DATA / NOT_JUDGED
    status: str  # CSS: pass, fail, wait


@dataclass
class RolloutPanel:
    """The running canary (or None), its split and gates, and the last ended rollouts."""

    running: dict[str, Any] | None
    split: Markup | None = None
    interval: str = ""
    gates: list[GateRow] = field(default_factory=list)
    ended: list[dict[str, Any]] = field(default_factory=list)


def _verdict(gate: str, limit: float, needed: float, report: dict[str, Any] | None) -> tuple[str, str, str]:
    """(value text, verdict, css status) of one gate from the step's last evaluation."""
    if not report:
        return "—", NOT_JUDGED, "wait"
    requests = int(_number(report.get("requests")) or 0)
    if gate == MIN_REQUESTS:
        enough = requests >= limit
        return format_count(requests), ("pass" if enough else WAITING), ("pass" if enough else "wait")
    found = (report.get("gates") or {}).get(gate) or {}
    value = _number(found.get("value"))
    if found.get("verdict") in ("pass", "fail") and value is not None:
        return GATE_FORMATS[gate](value), found["verdict"], found["verdict"]
    # "unknown": the controller held the step, for want of traffic or of data to compute from
    return "—", (WAITING if requests < needed else NO_DATA), "wait"


def gate_rows(gates: dict[str, Any], report: dict[str, Any] | None) -> list[GateRow]:
    """One row per gate set, in a fixed order; minRequests as the controller reads it (default 1)."""
    needed = _number(gates.get(MIN_REQUESTS)) or 1
    rows = []
    for gate in (*GATE_UNITS, MIN_REQUESTS):
        limit = _number(gates.get(gate))
        if limit is None:
            continue
        value, verdict, status = _verdict(gate, limit, needed, report)
        rows.append(GateRow(gate, GATE_LABELS[gate], GATE_FORMATS[gate](limit), value, verdict, status))
    return rows


def rollout_panel(history: list[dict[str, Any]]) -> RolloutPanel | None:
    """From `GET .../rollouts` (newest first); None when the deployment never had a canary."""
    if not history:
        return None
    running = next((r for r in history if r.get("state") == RUNNING), None)
    ended = [r for r in history if r.get("state") != RUNNING][:ENDED_SHOWN]
    panel = RolloutPanel(running=running, ended=ended)
    if running is not None:
        percent = int(_number(running.get("percent")) or 0)
        panel.split = split_bar(
            "split",
            "Traffic split",
            [Bar("champion", 100 - percent, "champion"), Bar("canary", percent, "canary")],
        )
        panel.interval = duration(int(_number(running.get("intervalSeconds")) or 0))
        panel.gates = gate_rows(running.get("gates") or {}, running.get("lastGates"))
    return panel


@dataclass(frozen=True)
class ModelRow:
    """One model of the comparison: its role now and its figures in the window (None: no data)."""

    model_id: str
    role: str  # champion, canary, challenger, earlier (reported in the window, no role now)
    name: str | None
    requests: int | None = None
    error_rate: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    agreement: float | None = None
    mean_abs_diff: float | None = None
    psi: float | None = None

    @property
    def title(self) -> str:
        return f"{self.role} {self.name or self.model_id[:12]}"


@dataclass
class ModelsPanel:
    rows: list[ModelRow]
    charts: list[Markup]
    psi_min_predictions: int | None


def models_panel(
    data: dict[str, Any] | None,
    champion_id: str,
    canary_id: str | None,
    challengers: list[dict[str, Any]],
    names: dict[str, str],
) -> ModelsPanel | None:
    """Champion, canary and challengers side by side; None when there is nothing to compare."""
    figures = {m["modelId"]: m for m in (data or {}).get("models") or [] if isinstance(m, dict) and "modelId" in m}
    roles: dict[str, str] = {champion_id: "champion"}
    if canary_id:
        roles[canary_id] = "canary"
    for challenger in challengers:
        roles.setdefault(challenger["modelPackageId"], "challenger")
        if challenger.get("modelPackageName"):
            names = {challenger["modelPackageId"]: challenger["modelPackageName"], **names}
    for model_id in figures:
        roles.setdefault(model_id, "earlier")
    if len(roles) < 2:
        return None
    rows = []
    for model_id, role in roles.items():
        found = figures.get(model_id, {})
        rows.append(
            ModelRow(
                model_id,
                role,
                names.get(model_id),
                requests=int(found["requests"]) if _number(found.get("requests")) is not None else None,
                error_rate=_number(found.get("errorRate")),
                p50_ms=_number(found.get("p50Ms")),
                p99_ms=_number(found.get("p99Ms")),
                agreement=_number(found.get("agreement")),
                mean_abs_diff=_number(found.get("meanAbsDiff")),
                psi=_number(found.get("psiVsChampion")),
            )
        )
    return ModelsPanel(rows, _model_charts(rows), data.get("psiMinPredictions") if data else None)


def _model_charts(rows: list[ModelRow]) -> list[Markup]:
    """Error rate and p99 of every model with requests; agreement of those compared with the champion."""
    measures: list[tuple[str, str, Callable[[ModelRow], float | None], Callable[[float], str], bool]] = [
        ("model-error-rate", "Error rate per model", lambda r: r.error_rate, format_percent, True),
        ("model-p99", "Latency p99 per model", lambda r: r.p99_ms, format_ms, True),
        ("model-agreement", "Agreement with the champion", lambda r: r.agreement, format_percent, False),
    ]
    charts = []
    for chart_id, title, pick, fmt, with_champion in measures:
        bars = []
        for row in rows:
            value = pick(row)
            if value is not None and (with_champion or row.role != "champion"):
                bars.append(Bar(row.title, value, row.role))
        if bars:
            charts.append(bar_chart(chart_id, title, bars, fmt=fmt))
    return charts

"""Small inline SVG charts drawn on the server: no JavaScript library, nothing fetched from a CDN.

Each function returns markup for one `<figure>`. Colours come from CSS classes in
`static/ui.css` (the page's Content-Security-Policy forbids inline styles). Every series
carries `data-points` and `data-sum` attributes, so tests (and curious users) can read
what was drawn without parsing coordinates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH = 640
HEIGHT = 180
MARGIN_LEFT = 56
MARGIN_RIGHT = 12
MARGIN_TOP = 12
MARGIN_BOTTOM = 26
# The plot area of the charts with a value axis on the left (line and distribution charts).
PLOT_WIDTH = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
PLOT_HEIGHT = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
# Above this many buckets, points are drawn as a line only (no circles).
MAX_MARKERS = 240

Formatter = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    """One line of a chart: a name for the legend, a value per bucket (None: no data) and a CSS class."""

    name: str
    values: Sequence[float | None]
    css: str


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= value (1 for 0 or less)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


def _top(series: Sequence[Series]) -> float:
    """The top of the value axis: a round number at or above every value drawn."""
    return nice_ceiling(max((v for s in series for v in s.values if v is not None), default=0.0))


def _frame(title: str, top: float, fmt: Formatter) -> list[str]:
    """The opening <svg> and the horizontal grid with its value labels (0, half, top)."""
    parts = [
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="none" data-max="{top:g}">'
    ]
    for fraction in (0.0, 0.5, 1.0):
        gy = MARGIN_TOP + PLOT_HEIGHT * (1 - fraction)
        parts.append(f'<line class="grid" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}"/>')
        parts.append(f'<text class="axis" x="{MARGIN_LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">')
        parts.append(f"{escape(fmt(top * fraction))}</text>")
    return parts


def _series_group(s: Series, points: Sequence[tuple[int, float]]) -> str:
    """The opening <g> of a series, with what tests read: how many points and their sum."""
    return (
        f'<g class="series {escape(s.css)}" data-series="{escape(s.name)}" '
        f'data-points="{len(points)}" data-sum="{sum(v for _, v in points):g}">'
    )


def format_count(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if value >= 10_000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def format_ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.3g} s"
    return f"{value:.3g} ms"


def format_ratio(value: float) -> str:
    return f"{value:.3g}"


def _css_token(text: str) -> str:
    """A string made safe to use inside a class name."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "unknown"


def _fmt_time(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S") if moment.second else moment.strftime("%H:%M")


def _figure(chart_id: str, title: str, legend: Sequence[tuple[str, str]], svg: str, note: str = "") -> Markup:
    items = "".join(f'<li><span class="swatch {escape(css)}"></span>{escape(name)}</li>' for name, css in legend)
    note_html = f'<p class="chart-note">{escape(note)}</p>' if note else ""
    return Markup(
        f'<figure class="chart" id="chart-{escape(chart_id)}" data-chart="{escape(chart_id)}">'
        f"<figcaption>{escape(title)}</figcaption>{svg}"
        f'<ul class="legend">{items}</ul>{note_html}</figure>'
    )


def line_chart(
    chart_id: str,
    title: str,
    times: Sequence[datetime],
    series: Sequence[Series],
    fmt: Formatter = format_count,
) -> Markup:
    """Lines over evenly spaced buckets starting at `times`; a None value breaks the line."""
    n = len(times)
    top = _top(series)

    def x(i: int) -> float:
        return MARGIN_LEFT + (PLOT_WIDTH * i / (n - 1) if n > 1 else PLOT_WIDTH / 2)

    def y(v: float) -> float:
        return MARGIN_TOP + PLOT_HEIGHT * (1 - min(v, top) / top)

    parts = _frame(title, top, fmt)
    if n:
        # first, middle and last bucket (one label each: a chart of one or two buckets has fewer)
        anchors = {0: "start", n // 2: "middle", n - 1: "end"} if n > 1 else {0: "middle"}
        for i, anchor in anchors.items():
            label = escape(_fmt_time(times[i]))
            parts.append(f'<text class="axis" x="{x(i):.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}">{label}</text>')
    for s in series:
        values = list(s.values)
        points = [(i, v) for i, v in enumerate(values) if v is not None]
        parts.append(_series_group(s, points))
        segment: list[str] = []
        for i, v in enumerate([*values, None]):
            if v is not None:
                segment.append(f"{x(i):.1f},{y(v):.1f}")
            elif segment:
                parts.append(f'<polyline class="line" points="{" ".join(segment)}"/>')
                segment = []
        if n <= MAX_MARKERS:
            for i, v in points:
                tip = f"{_fmt_time(times[i])} {s.name}: {fmt(v)}"
                circle = f'<circle class="point" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5">'
                parts.append(f"{circle}<title>{escape(tip)}</title></circle>")
        parts.append("</g>")
    parts.append("</svg>")
    return _figure(chart_id, title, [(s.name, s.css) for s in series], "".join(parts))


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: a label, a value and a status (a CSS class suffix, e.g. `ok`, `drifted`)."""

    label: str
    value: float
    status: str


def bar_chart(
    chart_id: str,
    title: str,
    bars: Sequence[Bar],
    thresholds: Sequence[float] = (),
    fmt: Formatter = format_ratio,
    note: str = "",
) -> Markup:
    """Horizontal bars, one per label, with dashed vertical lines at `thresholds`."""
    row_h = 22
    label_w = 150
    value_w = 60
    height = MARGIN_TOP + row_h * max(len(bars), 1) + MARGIN_BOTTOM
    plot_w = WIDTH - label_w - value_w - MARGIN_RIGHT
    top = nice_ceiling(max([b.value for b in bars] + list(thresholds) + [0.0]))

    def x(v: float) -> float:
        return label_w + plot_w * max(0.0, min(v, top)) / top

    parts = [
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}" data-max="{top:g}">'
    ]
    bottom = height - MARGIN_BOTTOM
    labelled = [0.0]  # x positions of the axis labels so far, to keep them apart
    for value in (*sorted(thresholds), top):
        tx = x(value)
        if value != top:
            parts.append(f'<line class="threshold" x1="{tx:.1f}" x2="{tx:.1f}" y1="{MARGIN_TOP}" y2="{bottom}"/>')
        if all(abs(tx - other) >= 36 for other in labelled):
            labelled.append(tx)
            anchor = "end" if value == top else "middle"
            parts.append(f'<text class="axis" x="{tx:.1f}" y="{height - 8}" text-anchor="{anchor}">{fmt(value)}</text>')
    statuses = sorted({b.status for b in bars})
    for row, bar in enumerate(bars):
        top_y = MARGIN_TOP + row * row_h
        css = f"bar bar-{_css_token(bar.status)}"
        width = max(x(bar.value) - label_w, 0.0)
        label = escape(bar.label if len(bar.label) <= 22 else bar.label[:21] + "…")
        parts.append(
            f'<g class="bar-row" data-label="{escape(bar.label)}" data-value="{bar.value:g}" '
            f'data-status="{escape(bar.status)}">'
            f'<text class="axis" x="{label_w - 6}" y="{top_y + 15}" text-anchor="end">{label}</text>'
            f'<rect class="{css}" x="{label_w}" y="{top_y + 4}" width="{width:.1f}" height="{row_h - 8}">'
            f"<title>{escape(bar.label)}: {escape(fmt(bar.value))} ({escape(bar.status)})</title></rect>"
            f'<text class="axis value" x="{label_w + width + 4:.1f}" y="{top_y + 15}">{escape(fmt(bar.value))}</text>'
            "</g>"
        )
    parts.append("</svg>")
    legend = [(status, f"bar-{_css_token(status)}") for status in statuses]
    return _figure(chart_id, title, legend, "".join(parts), note)


def distribution_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    groups: Sequence[Series],
    fmt: Formatter = format_ratio,
) -> Markup:
    """Vertical grouped bars: one group per label, one bar per series (e.g. baseline vs current share)."""
    n = max(len(labels), 1)
    top = _top(groups)
    slot = PLOT_WIDTH / n
    bar_w = max(slot * 0.8 / max(len(groups), 1), 1.0)
    parts = _frame(title, top, fmt)
    step = max(1, math.ceil(len(labels) / 12))
    for i, label in enumerate(labels):
        if i % step == 0:
            cx = MARGIN_LEFT + slot * (i + 0.5)
            short = label if len(label) <= 12 else label[:11] + "…"
            parts.append(
                f'<text class="axis" x="{cx:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(short)}</text>'
            )
    for g, s in enumerate(groups):
        points = [(i, v) for i, v in enumerate(s.values) if v is not None]
        parts.append(_series_group(s, points))
        for i, v in points:
            height = PLOT_HEIGHT * min(v, top) / top
            bx = MARGIN_LEFT + slot * i + slot * 0.1 + bar_w * g
            label = labels[i] if i < len(labels) else str(i)
            parts.append(
                f'<rect class="bar" x="{bx:.1f}" y="{MARGIN_TOP + PLOT_HEIGHT - height:.1f}" width="{bar_w:.1f}" '
                f'height="{height:.1f}"><title>{escape(label)} {escape(s.name)}: {escape(fmt(v))}</title></rect>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return _figure(chart_id, title, [(s.name, s.css) for s in groups], "".join(parts))


def split_bar(chart_id: str, title: str, parts: Sequence[Bar], note: str = "") -> Markup:
    """One bar cut into shares of 100 %, left to right (e.g. champion 80 %, canary 20 %)."""
    height = 36
    total = sum(max(p.value, 0.0) for p in parts) or 1.0
    svg = [
        f'<svg class="chart-svg split" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        'preserveAspectRatio="none">'
    ]
    left = 0.0
    for part in parts:
        width = WIDTH * max(part.value, 0.0) / total
        text = f"{part.label} {part.value:g} %"
        svg.append(
            f'<g class="split-part" data-label="{escape(part.label)}" data-value="{part.value:g}">'
            f'<rect class="bar bar-{_css_token(part.status)}" x="{left:.1f}" y="2" width="{width:.1f}" '
            f'height="{height - 4}"><title>{escape(text)}</title></rect>'
        )
        if width >= 8 * len(text):  # a label only where it fits; the legend names every part
            svg.append(
                f'<text class="split-label" x="{left + width / 2:.1f}" y="{height / 2 + 4:.1f}" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
        svg.append("</g>")
        left += width
    svg.append("</svg>")
    legend = [(f"{p.label} {p.value:g} %", f"bar-{_css_token(p.status)}") for p in parts]
    return _figure(chart_id, title, legend, "".join(svg), note)

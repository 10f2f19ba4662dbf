"""The canary flags of `deckhand deployments replace` (--canary, --step, --interval, the gates,
--sticky-header/--sticky-field) and the parsing of their values: durations (`30s`, `5m`, `1h`,
or plain seconds) and shares (`1%` or `0.01`). `canary_body` turns them into the API's
`canary` object; the server checks the ranges again and names the field if one is off."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

PANEL = "Canary"  # their own panel in --help
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str = "--interval") -> int:
    """`30s`, `5m`, `1h`, `1d` or a number of seconds, as whole seconds (at least 1)."""
    match = _DURATION.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration; write e.g. 30s, 5m or 1h", param_hint=option)
    seconds = float(match.group(1)) * _SECONDS[(match.group(2) or "s").lower()]
    if seconds < 1 or seconds != int(seconds):
        raise typer.BadParameter(f"{text!r} is not a whole number of seconds, at least 1", param_hint=option)
    return int(seconds)


def parse_share(text: str, option: str) -> float:
    """`1%` or `0.01` (a fraction between 0 and 1)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a share; write e.g. 1% or 0.01", param_hint=option) from None
    if not 0 <= value <= 1:
        raise typer.BadParameter(f"{text!r} is not between 0 and 1 (0% and 100%)", param_hint=option)
    return round(value, 12)  # 0.07 rather than 0.07000000000000001


CanaryOpt = Annotated[
    int | None,
    typer.Option(
        "--canary", min=1, max=99, metavar="PERCENT", rich_help_panel=PANEL,
        help="Start the new model as a canary with this share of the traffic instead of replacing at once.",
    ),
]  # fmt: skip
StepOpt = Annotated[
    int, typer.Option(min=1, max=100, metavar="POINTS", rich_help_panel=PANEL, help="Share added per passing step.")
]
IntervalOpt = Annotated[
    str, typer.Option(metavar="DURATION", rich_help_panel=PANEL, help="How long a step lasts: 30s, 5m, 1h.")
]
MaxErrorRateOpt = Annotated[
    str | None,
    typer.Option(metavar="SHARE", rich_help_panel=PANEL, help="Gate: the candidate's error rate, 1% or 0.01."),
]
MaxP99Opt = Annotated[
    float | None,
    typer.Option("--max-p99-ms", min=0, metavar="MS", rich_help_panel=PANEL, help="Gate: the candidate's p99 latency."),
]
MaxPsiOpt = Annotated[
    float | None,
    typer.Option(min=0, metavar="PSI", rich_help_panel=PANEL, help="Gate: PSI of its predictions vs the champion's."),
]
MinRequestsOpt = Annotated[
    int | None,
    typer.Option(min=1, metavar="N", rich_help_panel=PANEL, help="Requests a step needs before it is judged."),
]
StickyHeaderOpt = Annotated[
    str | None,
    typer.Option(
        metavar="NAME", rich_help_panel=PANEL, help="Keep requests with the same value of this header together."
    ),
]
StickyFieldOpt = Annotated[
    str | None,
    typer.Option(
        metavar="NAME", rich_help_panel=PANEL, help="Keep requests with the same value of this feature together."
    ),
]


def canary_body(
    percent: int | None,
    *,
    step: int,
    interval: str,
    max_error_rate: str | None,
    max_p99_ms: float | None,
    max_psi: float | None,
    min_requests: int | None,
    sticky_header: str | None,
    sticky_field: str | None,
) -> dict[str, Any] | None:
    """The API's `canary` object, or None without --canary (then no other canary flag may be given)."""
    gates = {"maxErrorRate": None if max_error_rate is None else parse_share(max_error_rate, "--max-error-rate"),
             "maxP99Ms": max_p99_ms, "maxPsi": max_psi, "minRequests": min_requests}  # fmt: skip
    gates = {k: v for k, v in gates.items() if v is not None}
    if sticky_header and sticky_field:
        raise typer.BadParameter("give one of --sticky-header and --sticky-field", param_hint="--sticky-field")
    if percent is None:
        if gates or sticky_header or sticky_field:
            raise typer.BadParameter(
                "gates and sticky keys are for a canary; add --canary PERCENT", param_hint="--canary"
            )
        return None
    body: dict[str, Any] = {"percent": percent, "step": step, "intervalSeconds": parse_duration(interval)}
    if gates:
        body["gates"] = gates
    if sticky_header or sticky_field:
        body["sticky"] = {"header": sticky_header} if sticky_header else {"field": sticky_field}
    return body

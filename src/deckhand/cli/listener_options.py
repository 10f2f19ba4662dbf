"""CLI flags for the connection limits that `deckhand serve` and `deckhand server` share
(deckhand.listener names them in its errors)."""

from __future__ import annotations

from typing import Annotated

import typer

from deckhand.listener import ConnectionLimits

_DEFAULTS = ConnectionLimits()

PANEL = "Connection limits"  # their own panel in --help

HeaderTimeout = Annotated[
    float,
    typer.Option(
        "--header-timeout",
        min=0.1,
        metavar="SECONDS",
        help="Seconds a client has to send a request's headers.",
        rich_help_panel=PANEL,
    ),
]
MaxHeaderBytes = Annotated[
    int,
    typer.Option(
        "--max-header-bytes",
        min=1024,
        metavar="BYTES",
        help="Largest request head (request line and headers), bytes.",
        rich_help_panel=PANEL,
    ),
]
BodyTimeout = Annotated[
    float,
    typer.Option(
        "--body-timeout",
        min=0.1,
        metavar="SECONDS",
        help=f"Seconds for a request body, plus 1 s per {_DEFAULTS.body_min_rate} bytes received.",
        rich_help_panel=PANEL,
    ),
]
MaxConnections = Annotated[
    int,
    typer.Option(
        "--max-connections",
        min=1,
        metavar="N",
        help="Open connections at most (idle ones are closed to make room).",
        rich_help_panel=PANEL,
    ),
]

HEADER_TIMEOUT = _DEFAULTS.header_timeout_s
MAX_HEADER_BYTES = _DEFAULTS.max_header_bytes
BODY_TIMEOUT = _DEFAULTS.body_timeout_s
MAX_CONNECTIONS = _DEFAULTS.max_connections


def limits(header_timeout: float, max_header_bytes: int, body_timeout: float, max_connections: int) -> ConnectionLimits:
    return ConnectionLimits(
        header_timeout_s=header_timeout,
        max_header_bytes=max_header_bytes,
        body_timeout_s=body_timeout,
        max_connections=max_connections,
    )

"""How commands print: the `--output` formats, JSON and tables on stdout, errors on stderr.

Progress and notes go to stderr too, so that `--output json` on stdout stays parseable.
"""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from pydantic import ValidationError

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]

# Table columns kept whole (copy-pasteable); other columns fold long text.
NO_WRAP_COLUMNS = frozenset({"id", "time", "created", "field"})


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` in red on stderr and exit with `code` (2: bad usage or
    configuration, found before any work starts; 1: the work itself failed)."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def problems(exc: ValidationError) -> str:
    """A settings model's refusal as one line: each problem's message, no traceback."""
    return "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())


def log_to_stderr(level: str | int) -> None:
    """Structured log lines (key=value) on stderr, for the long-running commands."""
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, format=LOG_FORMAT)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in NO_WRAP_COLUMNS, min_width=None)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    Console().print(table)


def print_details(title: str, fields: list[tuple[str, Any]]) -> None:
    """One object as a field/value table; dicts and lists as JSON."""
    rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in fields]
    print_table(title, ["field", "value"], rows)

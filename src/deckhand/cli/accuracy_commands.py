"""`deckhand actuals upload`: send a file of actuals, streamed in requests of a bounded size,
with progress; `deckhand deployments accuracy`: accuracy per model over time (docs/accuracy.md)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from deckhand.cli.control_plane_commands import DEFAULT_URL, ServerOpt, TokenOpt, _client, _errors, deployments_app
from deckhand.cli.monitoring_commands import EndOpt, StartOpt
from deckhand.cli.output import Output, OutputOpt, fail, print_json, print_table

app = typer.Typer()
actuals_app = typer.Typer(
    name="actuals", help="Actuals: the true values predictions are judged by.", no_args_is_help=True
)
app.add_typer(actuals_app)
ROWS_PER_REQUEST = 10_000
REJECTED_SHOWN = 20


def _csv_chunks(path: Path, rows_per_request: int, names: dict[str, str]) -> Iterator[tuple[bytes, int, int]]:
    """The file as CSV bodies of `rows_per_request` rows with the API's column names, each
    with its row count and the file position reached: never more than one body in memory."""
    position = 0

    def lines(handle: Any) -> Iterator[str]:  # counts what was read: tell() is off while iterating
        nonlocal position
        for line in handle:
            position += len(line.encode("utf-8"))
            yield line

    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(lines(handle))
        header = next(reader, None) or []
        missing = [names[k] for k in ("associationId", "actualValue") if names[k] not in header]
        if missing:
            fail(f"{path}: no column {missing[0]!r} in the header {header}; name it with --id-column/--value-column")
        columns = [header.index(names["associationId"]), header.index(names["actualValue"])]
        out_header = ["associationId", "actualValue"]
        if names["timestamp"] in header:
            columns.append(header.index(names["timestamp"]))
            out_header.append("timestamp")
        buffer, writer, count = _new_body(out_header)
        for fields in reader:
            if not fields:
                continue
            writer.writerow([fields[i] if i < len(fields) else "" for i in columns])
            count += 1
            if count == rows_per_request:
                yield buffer.getvalue().encode(), count, position
                buffer, writer, count = _new_body(out_header)
        if count:
            yield buffer.getvalue().encode(), count, position


def _new_body(header: list[str]) -> tuple[io.StringIO, Any, int]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    return buffer, writer, 0


@actuals_app.command("upload")
def actuals_upload(
    file: Annotated[Path, typer.Argument(help="A CSV file with a header row.", exists=True, dir_okay=False)],
    deployment: Annotated[str, typer.Option("--deployment", help="Deployment id (or unique name).")],
    id_column: Annotated[str, typer.Option(help="The column with the association ids.")] = "associationId",
    value_column: Annotated[str, typer.Option(help="The column with the actual values.")] = "actualValue",
    timestamp_column: Annotated[str, typer.Option(help="The column with the times (optional).")] = "timestamp",
    rows_per_request: Annotated[
        int, typer.Option(min=1, max=100_000, help="Rows sent per request (the server takes up to 100,000).")
    ] = ROWS_PER_REQUEST,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Upload actuals from a CSV file of any size: streamed in requests of --rows-per-request
    rows, with a progress bar. Sending a file again is harmless (actuals are kept by id)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    names = {"associationId": id_column, "actualValue": value_column, "timestamp": timestamp_column}
    totals = {"received": 0, "inserted": 0, "updated": 0, "unchanged": 0, "matched": 0, "pending": 0}
    rejected: list[dict[str, Any]] = []
    rejected_count = 0
    with _errors():
        client = _client(server, token)
        dep_id = client.get_deployment(deployment)["id"]
        sent_rows = 0
        with Progress(
            TextColumn("actuals {task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=output is Output.json,
        ) as progress:
            task = progress.add_task(file.name, total=file.stat().st_size, rows=0)
            for body, count, position in _csv_chunks(file, rows_per_request, names):
                answer = client.upload_actuals(dep_id, body, "text/csv")
                for key in totals:
                    totals[key] += answer[key]
                for item in answer["rejected"]:  # rows numbered in the file, not the request
                    if len(rejected) < REJECTED_SHOWN:
                        rejected.append({**item, "row": item["row"] + sent_rows})
                rejected_count += answer["rejectedCount"]
                sent_rows += count
                progress.update(task, completed=position, rows=sent_rows)
    summary = {**totals, "rejectedCount": rejected_count, "rejected": rejected}
    if output is Output.json:
        print_json(summary)
        raise typer.Exit(1 if rejected_count else 0)
    typer.echo(
        f"{totals['received']:,} rows: {totals['inserted']:,} new, {totals['updated']:,} updated, "
        f"{totals['unchanged']:,} unchanged; {totals['matched']:,} matched a prediction, "
        f"{totals['pending']:,} wait for theirs; {rejected_count:,} rejected"
    )
    for item in rejected:
        typer.echo(f"  row {item['row']} ({item.get('associationId')}): {item['field']}: {item['reason']}", err=True)
    if rejected_count:
        raise typer.Exit(1)


@deployments_app.command("accuracy")
def deployments_accuracy(
    deployment: Annotated[str, typer.Argument(help="Deployment id (or unique name).")],
    start: StartOpt = None,
    end: EndOpt = None,
    bucket_seconds: Annotated[int, typer.Option(min=60, help="Bucket width in seconds, a multiple of 60.")] = 3600,
    model: Annotated[str | None, typer.Option("--model", help="One model only.")] = None,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Accuracy of each model (champion first) from the predictions that have actuals:
    RMSE, MAE, R² (regression); accuracy, AUC, log loss, precision, recall (classification)."""
    with _errors():
        found = _client(server, token).accuracy(deployment, start, end, bucket_seconds, model)
    if output is Output.json:
        print_json(found)
        return
    if not found["models"]:
        typer.echo(f"no predictions with actuals in {found['start']} .. {found['end']}")
        return
    for entry in found["models"]:
        names = sorted({name for b in entry["buckets"] for name in b["metrics"]}, key=list(entry["metrics"]).index)
        rows = [[b["start"], b["matched"], *(_number(b["metrics"].get(n)) for n in names)] for b in entry["buckets"]]
        rows.append(["total", entry["matched"], *(_number(entry["metrics"].get(n)) for n in names)])
        role = "champion" if entry["champion"] else "other model"
        print_table(f"{entry['modelId']} ({role}, {entry['kind']})", ["bucket start", "matched", *names], rows)


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"

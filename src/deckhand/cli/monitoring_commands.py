"""`deckhand tracking-agent`: carry monitoring records from a channel to the control plane;
`deckhand monitoring models`: what the control plane made of them, per model."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from deckhand.cli.control_plane_commands import DEFAULT_URL, ServerOpt, TokenOpt, _client, _errors
from deckhand.cli.output import Output, OutputOpt, fail, log_to_stderr, print_json, print_table

app = typer.Typer()
monitoring_app = typer.Typer(name="monitoring", help="Monitoring of deployments.", no_args_is_help=True)
app.add_typer(monitoring_app)
StartOpt = Annotated[
    str | None, typer.Option("--start", help="Window start, ISO 8601 (UTC if no zone). Default: end minus one hour.")
]
EndOpt = Annotated[str | None, typer.Option("--end", help="Window end, ISO 8601 (UTC if no zone). Default: now.")]
MODEL_COLUMNS = [
    "model", "role", "requests", "errors", "error rate", "p50 ms", "p99 ms",
    "agreement", "mean |diff|", "PSI vs champion",
]  # fmt: skip


def _share(value: float | None) -> str | None:
    return None if value is None else f"{100 * value:.2f}%"


def _number(value: float | None) -> str | None:
    return None if value is None else f"{value:.4g}"


def _model_row(model: dict[str, Any]) -> list[Any]:
    role = "champion" if model["champion"] else "shadow" if model["shadow"] else "serving"
    return [
        model["modelId"],
        role,
        model["requests"],
        model["userErrors"] + model["systemErrors"],
        _share(model["errorRate"]),
        _number(model["p50Ms"]),
        _number(model["p99Ms"]),
        _share(model["agreement"]),
        _number(model["meanAbsDiff"]),
        _number(model["psiVsChampion"]),
    ]


@monitoring_app.command("models")
def monitoring_models(
    deployment: Annotated[str, typer.Argument(help="Deployment id (or unique name).")],
    start: StartOpt = None,
    end: EndOpt = None,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Each model of a deployment (champion, canary, challengers): requests, errors,
    latency, agreement with the champion and prediction PSI against it."""
    with _errors():
        found = _client(server, token).model_monitoring(deployment, start=start, end=end)
    if output is Output.json:
        print_json(found)
        return
    title = f"models of {found['deploymentId']}, {found['start']} .. {found['end']}"
    print_table(title, MODEL_COLUMNS, [_model_row(m) for m in found["models"]])


@app.command("tracking-agent")
def tracking_agent(
    channel: Annotated[
        str | None,
        typer.Option(
            help="Channel spec: spool:/abs/dir or amqp://user:pass@host:5672/vhost?queue=NAME "
            "(default: $DECKHAND_MONITORING)."
        ),
    ] = None,
    server: Annotated[str | None, typer.Option(help="Control plane URL (default: $DECKHAND_URL).")] = None,
    token: Annotated[
        str | None, typer.Option(help="Agent or admin token (default: $DECKHAND_TOKEN).", show_default=False)
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Records per batch sent to the control plane.")] = 50_000,
    flush_interval: Annotated[float, typer.Option(help="Longest wait, in seconds, before sending.")] = 1.0,
    log_level: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Read a monitoring channel, aggregate, send to the control plane, then acknowledge."""
    import logging
    import signal

    from deckhand.client.control_plane import ControlPlaneClient
    from deckhand.monitoring.channels import ChannelConfigError, channel_from_spec
    from deckhand.monitoring.tracking_agent import TrackingAgent
    from deckhand.secrets import install_masking, register_secret

    log_to_stderr(log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    install_masking()
    spec = channel or os.environ.get("DECKHAND_MONITORING")
    url = server or os.environ.get("DECKHAND_URL")
    secret = token or os.environ.get("DECKHAND_TOKEN")
    register_secret(secret)
    problems = []
    if not spec:
        problems.append("--channel (or DECKHAND_MONITORING): which channel to read, e.g. spool:/var/lib/spool")
    if not url:
        problems.append("--server (or DECKHAND_URL): the control plane URL, e.g. http://127.0.0.1:8000")
    if not secret:
        problems.append("--token (or DECKHAND_TOKEN): an agent or admin token")
    if problems:
        fail("missing " + "; ".join(problems), code=2)
    try:
        source = channel_from_spec(spec)  # type: ignore[arg-type]
        agent = TrackingAgent(
            source,
            ControlPlaneClient(url, secret),  # type: ignore[arg-type]
            batch_size=batch_size,
            flush_interval=flush_interval,
        )
    except (ChannelConfigError, ValueError) as exc:
        fail(str(exc), code=2)

    def _stop(_signum: int, _frame: object) -> None:
        agent.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    agent.run()

"""`deckhand deployments promote|abort|rollout` (a deployment's canary, started by
`deployments replace --canary`) and `deckhand deployments challengers|challenger-add|
challenger-remove|challenger-promote|challenger-copies`. They join the `deployments` group of
control_plane_commands; this module's own `app` holds nothing."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from deckhand.cli.control_plane_commands import (
    DEFAULT_URL,
    DeploymentArg,
    ForceOpt,
    NoteOpt,
    ReasonOpt,
    ServerOpt,
    TokenOpt,
    _check_reason,
    _client,
    _errors,
    _package_id,
    _short_time,
    deployments_app,
)
from deckhand.cli.output import Output, OutputOpt, print_details, print_json, print_table
from deckhand.server.replace_reasons import DEFAULT_REASON

app = typer.Typer()
PackageArg = Annotated[str, typer.Argument(help="A model package id (add: or a package file to upload).")]


def _gate_rows(rollout: dict[str, Any]) -> list[tuple[str, Any]]:
    """One row per gate: its limit, and the last value and verdict."""
    last = (rollout.get("lastGates") or {}).get("gates") or {}
    rows = []
    for gate, limit in rollout["gates"].items():
        if gate == "minRequests":
            continue
        seen = last.get(gate)
        judged = f", last {seen['value']} ({seen['verdict']})" if seen and seen["value"] is not None else ""
        rows.append((f"gate {gate}", f"limit {limit}{judged}"))
    return rows


WaitOpt = Annotated[bool, typer.Option("--wait", help="Follow the canary until it ends; exit 1 unless it is promoted.")]
WaitTimeoutOpt = Annotated[float, typer.Option("--timeout", min=1, metavar="SECONDS", help="How long to --wait.")]
ENDED_WELL = "promoted"


def _follow(client: Any, dep_id: str, timeout: float) -> dict[str, Any]:
    """Poll the rollout until it ends (or `timeout`), printing each change of share or state."""
    from rich.console import Console

    console = Console(stderr=True)
    deadline = time.monotonic() + timeout
    seen: tuple[str, int] | None = None
    with console.status("following the canary") as status:
        while True:
            rollout: dict[str, Any] = client.get_rollout(dep_id)
            now = (rollout["state"], rollout["percent"])
            if now != seen:
                when = _short_time(rollout["updatedAt"]) or ""
                console.print(f"{when}  {now[0]} at {now[1]} %  {rollout['outcome']}")
                seen = now
            if rollout["state"] != "running":
                return rollout
            if time.monotonic() >= deadline:
                raise typer.Exit(f"the canary still runs after {timeout:.0f} s (--timeout); it goes on without you")
            status.update(f"canary at {rollout['percent']} %: {rollout['outcome'] or 'waiting for its next step'}")
            time.sleep(1.0)


@deployments_app.command("rollout")
def deployments_rollout(
    deployment: DeploymentArg,
    wait: WaitOpt = False,
    timeout: WaitTimeoutOpt = 1800.0,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """The deployment's running canary (else its last one): share, gates, last verdicts, next step.
    With --wait, follow it until it is promoted, rolled back or aborted."""
    with _errors():
        client = _client(server, token)
        dep = client.get_deployment(deployment)
        rollout = _follow(client, dep["id"], timeout) if wait else client.get_rollout(dep["id"])
    _show_rollout(dep, rollout, output)
    if wait and rollout["state"] != ENDED_WELL:
        raise typer.Exit(1)


def _show_rollout(dep: dict[str, Any], rollout: dict[str, Any], output: Output) -> None:
    if output is Output.json:
        print_json(rollout)
        return
    last = rollout.get("lastGates") or {}
    print_details(
        f"canary of deployment {dep['name']}",
        [
            ("state", rollout["state"]),
            ("candidate", rollout["modelPackageId"]),
            ("champion", rollout["fromPackageId"]),
            ("share", f"{rollout['percent']} % (+{rollout['step']} every {rollout['intervalSeconds']} s)"),
            ("next step", _short_time(rollout.get("nextStepAt")) or "-"),
            ("min requests", rollout["gates"].get("minRequests", "-")),
            *_gate_rows(rollout),
            ("requests last judged", last.get("requests", "-")),
            ("sticky", json.dumps(rollout["sticky"]) if rollout["sticky"] else "none"),
            ("outcome", rollout["outcome"] or "-"),
            ("started", f"{_short_time(rollout['startedAt'])} by {rollout['createdBy']}"),
            ("ended", _short_time(rollout.get("endedAt")) or "-"),
        ],
    )


def _print_deployment(done: str, dep: dict[str, Any], output: Output) -> None:
    if output is Output.json:
        print_json(dep)
    else:
        typer.echo(f"{done}: deployment {dep['name']} ({dep['id']}) serves {dep['servedModelId']}")


@deployments_app.command("promote")
def deployments_promote(
    deployment: DeploymentArg, server: ServerOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """Promote the running canary now: it becomes the deployment's next revision."""
    with _errors():
        client = _client(server, token)
        dep = client.promote_rollout(client.get_deployment(deployment)["id"])
    _print_deployment("promoted the canary", dep, output)


@deployments_app.command("abort")
def deployments_abort(
    deployment: DeploymentArg, server: ServerOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """End the running canary; the champion keeps all traffic."""
    with _errors():
        client = _client(server, token)
        dep = client.abort_rollout(client.get_deployment(deployment)["id"])
    _print_deployment("aborted the canary", dep, output)


@deployments_app.command("challengers")
def deployments_challengers(
    deployment: DeploymentArg, server: ServerOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.table
) -> None:
    """The deployment's challengers (shadow models: their answers are recorded, never returned)."""
    with _errors():
        client = _client(server, token)
        dep = client.get_deployment(deployment)
        found = client.list_challengers(dep["id"])
    if output is Output.json:
        print_json(found)
        return
    print_table(
        f"challengers of deployment {dep['name']} (copies of {_percent(dep['challengerCopyPercent'])} of requests)",
        ["model package", "name", "added", "by"],
        [[c["modelPackageId"], c["modelPackageName"], _short_time(c["addedAt"]), c["addedBy"]] for c in found],
    )


@deployments_app.command("challenger-add")
def deployments_challenger_add(
    deployment: DeploymentArg,
    package: PackageArg,
    force: ForceOpt = False,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Add a challenger (at most 5): it scores a copy of live requests next to the champion."""
    with _errors():
        client = _client(server, token)
        dep_id = client.get_deployment(deployment)["id"]
        dep = client.add_challenger(dep_id, _package_id(client, package), force)
    _print_deployment("added the challenger", dep, output)


@deployments_app.command("challenger-copies")
def deployments_challenger_copies(
    deployment: DeploymentArg,
    percent: Annotated[
        float,
        typer.Argument(
            min=0, max=100, help="The percent of requests copied to the challengers, over 0 (0.5: 1 in 200); 100: all."
        ),
    ],
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Copy only a share of the requests to the challengers (as a mesh mirrors a share): on a busy
    deployment a sample is enough to compare them, and the scorer does less work."""
    if percent <= 0:
        raise typer.BadParameter("must be over 0; to stop the copies, remove the challengers", param_hint="'percent'")
    with _errors():
        client = _client(server, token)
        dep = client.update_deployment(client.get_deployment(deployment)["id"], challenger_copy_percent=percent)
    _print_deployment(f"challengers get copies of {_percent(dep['challengerCopyPercent'])} of requests", dep, output)


def _percent(value: float) -> str:
    return f"{value:g} %"


@deployments_app.command("challenger-remove")
def deployments_challenger_remove(
    deployment: DeploymentArg,
    package: PackageArg,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Remove a challenger."""
    with _errors():
        client = _client(server, token)
        dep = client.remove_challenger(client.get_deployment(deployment)["id"], package)
    _print_deployment("removed the challenger", dep, output)


@deployments_app.command("challenger-promote")
def deployments_challenger_promote(
    deployment: DeploymentArg,
    package: PackageArg,
    reason: ReasonOpt = DEFAULT_REASON,
    note: NoteOpt = None,
    force: ForceOpt = False,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Make a challenger the champion, as the next revision (the old champion is not made a challenger)."""
    _check_reason(reason)
    with _errors():
        client = _client(server, token)
        dep_id = client.get_deployment(deployment)["id"]
        dep = client.promote_challenger(dep_id, package, reason, note, force)
    _print_deployment("promoted the challenger", dep, output)

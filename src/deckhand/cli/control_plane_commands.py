"""Commands that talk to the control plane: `deckhand env`, `deploy`, `deployments`,
`events` and `tokens`.

Every command takes `--server` / `--token` (or DECKHAND_URL / DECKHAND_TOKEN); listing
commands take `--output table|json`. Progress (uploads, `--wait`) goes to stderr so that
JSON on stdout stays parseable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deckhand.cli import rollout_options as ro
from deckhand.cli.output import Output, OutputOpt, fail, print_details, print_json, print_table
from deckhand.plugin.platforms import PLATFORMS
from deckhand.server.replace_reasons import DEFAULT_REASON, REPLACE_REASONS

if TYPE_CHECKING:
    from deckhand.client import ControlPlaneClient

DEFAULT_URL = "http://127.0.0.1:8000"
ROLES = ("admin", "agent", "read-only")

CONNECTION = "Control plane"  # the --help panel of --server and --token
ServerOpt = Annotated[
    str, typer.Option("--server", envvar="DECKHAND_URL", help="Control plane URL.", rich_help_panel=CONNECTION)
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="DECKHAND_TOKEN", help="API token.", show_default=False, rich_help_panel=CONNECTION),
]
TimeoutOpt = Annotated[float, typer.Option(min=1, metavar="SECONDS", help="How long to --wait.")]
FORCE_HINT = "pass --force to change it anyway"
ReasonOpt = Annotated[
    str, typer.Option(help=f"Why the model changes: one of {', '.join(REPLACE_REASONS)}.", show_default=True)
]
NoteOpt = Annotated[str | None, typer.Option(help="Free text: what prompted the change.", show_default=False)]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Change the model even if its target type, class labels or features differ."),
]
KvOpt = Annotated[
    list[str] | None,
    typer.Option("--kv", metavar="KEY=VALUE", help="Key-value config entry (repeatable; JSON values ok)."),
]

# `deckhand deploy` and `deckhand events`, and the groups env, deployments and tokens.
app = typer.Typer()


# -- helpers ---------------------------------------------------------------------------


@contextmanager
def _errors() -> Iterator[None]:
    """Turn control-plane errors into one red line and exit code 1."""
    from deckhand.client import ControlPlaneError

    try:
        yield
    except ControlPlaneError as exc:
        incompatible = [e for e in exc.errors if e.get("type") == "incompatible"]
        if incompatible:
            lines = "".join(f"\n  {e.get('field')}: {e.get('message')}" for e in incompatible)
            fail(f"the new model is not compatible with the one the deployment runs:{lines}\n{FORCE_HINT}")
        fail(str(exc))


def _client(server: str, token: str | None) -> ControlPlaneClient:
    from deckhand.client import ControlPlaneClient

    if not token:
        fail("no API token: pass --token or set DECKHAND_TOKEN")
    return ControlPlaneClient(server, token)


def parse_pairs(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """KEY=VALUE strings into a dict; values are parsed as JSON when they are valid JSON."""
    result: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=option)
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        result[key.strip()] = value
    return result


def _load_mapping(path: Path | None, option: str) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml  # type: ignore[import-untyped,unused-ignore]

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint=option) from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold a mapping", param_hint=option)
    return data


def _short_time(value: str | None) -> str:
    return (value or "")[:19].replace("T", " ")


def _observed(dep: dict[str, Any]) -> dict[str, Any]:
    return dep.get("observed") or {}


def _deployment_rows(deps: list[dict[str, Any]], env_names: dict[str, str]) -> list[list[Any]]:
    return [
        [
            d["id"],
            d["name"],
            env_names.get(d["environmentId"], d["environmentId"]),
            "yes" if d["active"] else "no",
            _observed(d).get("state") or "-",
            _observed(d).get("predictionUrl") or "",
        ]
        for d in deps
    ]


# The model package and revisions are in `deployments show` and in --output json.
DEPLOYMENT_COLUMNS = ["id", "name", "environment", "active", "state", "prediction URL"]


def _show_deployment(dep: dict[str, Any], output: Output) -> None:
    if output is Output.json:
        print_json(dep)
        return
    obs = _observed(dep)
    print_details(
        f"deployment {dep['name']}",
        [
            ("id", dep["id"]),
            ("environment", dep["environmentId"]),
            ("model package", dep["modelPackageId"]),
            ("active", dep["active"]),
            ("revision", dep["revision"]),
            ("served model", dep.get("servedModelId")),
            ("canary", _canary_summary(dep)),
            ("key-value config", dep["keyValueConfig"]),
            ("state", obs.get("state") or "not reported yet"),
            ("model in use", obs.get("modelId")),
            ("prediction URL", obs.get("predictionUrl")),
            ("message", obs.get("message")),
            ("old model in use", obs.get("oldModelInUse")),
            ("observed at", _short_time(obs.get("updatedAt"))),
        ],
    )


def _canary_summary(dep: dict[str, Any]) -> str:
    rollout = dep.get("rollout")
    return f"{rollout['modelPackageId']} at {rollout['percent']} %" if rollout else "none"


def _upload_with_progress(client: ControlPlaneClient, path: Path) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    size = path.stat().st_size
    with Progress(
        TextColumn("uploading {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as progress:
        task = progress.add_task(path.name, total=size)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or size)

        package = client.upload_package(path, progress=advance)
        progress.update(task, completed=size)
    return package


def _package_id(client: ControlPlaneClient, package: str) -> str:
    """PACKAGE is a file to upload, or the id of an uploaded package."""
    path = Path(package)
    if path.is_file():
        uploaded = _upload_with_progress(client, path)
        typer.echo(
            f"uploaded model package {uploaded['name']} ({uploaded['format']}, "
            f"{uploaded['size']} bytes) id {uploaded['id']}",
            err=True,
        )
        return str(uploaded["id"])
    if path.suffix or "/" in package:
        fail(f"PACKAGE {package!r}: no such file (give a package file or a package id)")
    return str(client.get_package(package)["id"])


def wait_until_ready(
    client: ControlPlaneClient,
    deployment_id: str,
    model_package_id: str,
    timeout: float,
    interval: float = 1.0,
    since: str | None = None,
) -> dict[str, Any]:
    """Poll the deployment until the agent reports it ready with this model.

    Raises typer.Exit(1) with the last observed message if it goes errored, if a model
    replacement failed (the old model kept serving), or on timeout.
    """
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("waiting for the agent", total=None)
        while True:
            dep = client.get_deployment(deployment_id)
            obs = _observed(dep)
            fresh = bool(obs) and (since is None or (obs.get("updatedAt") or "") >= since)
            if fresh:
                last = obs
                state = obs.get("state")
                progress.update(task, description=f"state {state}: {obs.get('message') or ''}")
                if state == "ready" and obs.get("modelId") in (None, model_package_id):
                    return dep
                if state == "errored":
                    fail(f"deployment {dep['name']} ({deployment_id}) errored: {obs.get('message') or 'no message'}")
                if obs.get("oldModelInUse") and obs.get("modelId") != model_package_id:
                    fail(
                        f"deployment {dep['name']}: the new model did not become healthy, the "
                        f"old model {obs.get('modelId')} is still serving: {obs.get('message')}"
                    )
            if time.monotonic() >= deadline:
                state = last.get("state") or "not reported by any agent"
                fail(
                    f"timed out after {timeout:g} s waiting for deployment {dep['name']} "
                    f"({deployment_id}) to be ready; last state: {state}"
                    + (f": {last.get('message')}" if last.get("message") else "")
                    + (" (is an agent running for its environment?)" if not last else "")
                )
            time.sleep(interval)


def _deploy_package(
    client: ControlPlaneClient,
    package: str,
    change: Callable[[str], dict[str, Any]],
    *,
    wait: bool,
    timeout: float,
    output: Output,
) -> None:
    """What `deploy` and `deployments replace` share: upload PACKAGE if it is a file (else
    it is a package id), make the change with the package id, wait for the agent to report
    the deployment ready with it if asked (rich progress on stderr), and print the result."""
    package_id = _package_id(client, package)
    since = _now_iso()
    dep = change(package_id)
    if wait:
        dep = wait_until_ready(client, dep["id"], package_id, timeout, since=since)
    if output is Output.json:
        print_json(dep)
    elif wait:
        url = _observed(dep).get("predictionUrl") or "(no prediction URL reported)"
        typer.echo(f"deployment {dep['name']} ({dep['id']}) is ready: {url}")
    else:
        typer.echo(f"deployment {dep['name']} ({dep['id']}) revision {dep['revision']}")


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# -- deckhand env ------------------------------------------------------------------------

env_app = typer.Typer(name="env", help="Prediction environments.", no_args_is_help=True)
app.add_typer(env_app)
PLUGIN = "Plugin"  # a --help panel of env create


@env_app.command("create")
def env_create(
    name: Annotated[str, typer.Argument(help="Environment name (unique).")],
    platform: Annotated[str, typer.Option(help=f"One of: {', '.join(PLATFORMS)}.", case_sensitive=False)] = "local",
    plugin: Annotated[str | None, typer.Option(help="Plugin (default from platform).", rich_help_panel=PLUGIN)] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    plugin_config: Annotated[
        list[str] | None,
        typer.Option(
            "--plugin-config", metavar="KEY=VALUE", help="Plugin config entry (repeatable).", rich_help_panel=PLUGIN
        ),
    ] = None,
    plugin_config_file: Annotated[
        Path | None, typer.Option(help="YAML or JSON file with the plugin config.", rich_help_panel=PLUGIN)
    ] = None,
    kv: KvOpt = None,
    monitoring: Annotated[
        bool | None, typer.Option("--monitoring/--no-monitoring", help="Default: on for local, off elsewhere.")
    ] = None,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create a prediction environment."""
    if platform not in PLATFORMS:
        raise typer.BadParameter(f"{platform!r} is not one of {', '.join(PLATFORMS)}", param_hint="--platform")
    _warn_if_plugin_extra_missing(platform, plugin)
    config = _load_mapping(plugin_config_file, "--plugin-config-file")
    config.update(parse_pairs(plugin_config, "--plugin-config"))
    body: dict[str, Any] = {
        "name": name,
        "platform": platform,
        "description": description,
        "pluginConfig": config,
        "keyValueConfig": parse_pairs(kv, "--kv"),
        "monitoringEnabled": monitoring,
    }
    if plugin:
        body["plugin"] = plugin
    with _errors():
        env = _client(server, token).create_environment(**body)
    if output is Output.json:
        print_json(env)
    else:
        typer.echo(f"created environment {env['name']} id {env['id']} (plugin {env['plugin']})")


def _warn_if_plugin_extra_missing(platform: str, plugin: str | None) -> None:
    """A warning, not an error: the environment is a record in the control plane, and its
    plugin runs where the agent runs, often another machine or an image (which then needs the
    extra; the agent refuses the environment without it). Here it is likely the same machine."""
    from deckhand import extras
    from deckhand.plugin.platforms import DEFAULT_PLUGIN_BY_PLATFORM

    needed = extras.missing(extras.for_plugin(plugin or DEFAULT_PLUGIN_BY_PLATFORM.get(platform)))
    if needed is not None:
        typer.secho(
            f"warning: {extras.describe(needed)} (here, or wherever the agent for this environment runs)",
            fg=typer.colors.YELLOW,
            err=True,
        )


@env_app.command("list")
def env_list(server: ServerOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.table) -> None:
    """List prediction environments."""
    with _errors():
        envs = _client(server, token).list_environments()
    if output is Output.json:
        print_json(envs)
        return
    print_table(
        "prediction environments",
        ["id", "name", "platform", "plugin", "status", "rev", "created"],
        [
            [e["id"], e["name"], e["platform"], e["plugin"],
             (e.get("status") or {}).get("status") or "-", e["revision"],
             _short_time(e["createdAt"])]
            for e in envs
        ],
    )  # fmt: skip


@env_app.command("show")
def env_show(
    env: Annotated[str, typer.Argument(help="Environment id or name.")],
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show an environment and its deployments."""
    with _errors():
        client = _client(server, token)
        found = client.get_environment(env)
        deps = client.list_deployments(environment_id=found["id"])
    if output is Output.json:
        print_json({**found, "deployments": deps})
        return
    status = found.get("status") or {}
    print_details(
        f"environment {found['name']}",
        [
            ("id", found["id"]),
            ("platform", found["platform"]),
            ("plugin", found["plugin"]),
            ("plugin config", found["pluginConfig"]),
            ("key-value config", found["keyValueConfig"]),
            ("monitoring", found["monitoringEnabled"]),
            ("revision", found["revision"]),
            ("status", status.get("status") or "no agent report yet"),
            ("status message", status.get("message")),
            ("created", f"{_short_time(found['createdAt'])} by {found.get('createdBy')}"),
        ],
    )
    print_table("deployments", DEPLOYMENT_COLUMNS, _deployment_rows(deps, {found["id"]: found["name"]}))


@env_app.command("delete")
def env_delete(
    env: Annotated[str, typer.Argument(help="Environment id or name.")],
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Delete an environment (it must have no deployments)."""
    with _errors():
        _client(server, token).delete_environment(env)
    typer.echo(f"deleted environment {env}")


# -- deckhand deploy ---------------------------------------------------------------------


@app.command("deploy")
def deploy(
    package: Annotated[str, typer.Argument(help="A package file to upload, or a package id.")],
    env: Annotated[str, typer.Option("--env", help="Environment id or name.")],
    name: Annotated[str, typer.Option("--name", help="Deployment name.")],
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    kv: KvOpt = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Create it inactive.")] = False,
    association_id_column: Annotated[
        str | None,
        typer.Option(
            "--association-id",
            metavar="COLUMN",
            help="The request column with each row's association id, to match actuals to (docs/accuracy.md).",
        ),
    ] = None,
    generate_association_ids: Annotated[
        bool,
        typer.Option("--generate-ids", help="Give rows without an association id one (returned with the prediction)."),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the agent reports it ready.")] = False,
    timeout: TimeoutOpt = 300.0,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Deploy a model package to a prediction environment."""
    association = None
    if association_id_column or generate_association_ids:
        association = {"column": association_id_column, "generate": generate_association_ids}
    with _errors():
        client = _client(server, token)
        environment = client.get_environment(env)

        def create(package_id: str) -> dict[str, Any]:
            dep = client.create_deployment(
                name,
                environment["id"],
                package_id,
                description=description,
                key_value_config=parse_pairs(kv, "--kv"),
                active=not inactive,
                association_id=association,
            )
            typer.echo(f"created deployment {dep['name']} id {dep['id']}", err=True)
            return dep

        _deploy_package(client, package, create, wait=wait and not inactive, timeout=timeout, output=output)


# -- deckhand deployments ------------------------------------------------------------------

deployments_app = typer.Typer(name="deployments", help="Deployments.", no_args_is_help=True)
app.add_typer(deployments_app)
DeploymentArg = Annotated[str, typer.Argument(help="Deployment id (or unique name).")]


@deployments_app.command("list")
def deployments_list(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """List deployments with their observed state."""
    with _errors():
        client = _client(server, token)
        deps = client.list_deployments(environment_id=env)
        names = {} if output is Output.json else {
            e["id"]: e["name"] for e in client.list_environments()
        }  # fmt: skip
    if output is Output.json:
        print_json(deps)
    else:
        print_table("deployments", DEPLOYMENT_COLUMNS, _deployment_rows(deps, names))


@deployments_app.command("show")
def deployments_show(
    deployment: DeploymentArg,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show a deployment: desired and observed state."""
    with _errors():
        dep = _client(server, token).get_deployment(deployment)
    _show_deployment(dep, output)


@deployments_app.command("replace")
def deployments_replace(
    deployment: DeploymentArg,
    package: Annotated[str, typer.Argument(help="A package file to upload, or a package id.")],
    reason: ReasonOpt = DEFAULT_REASON,
    note: NoteOpt = None,
    force: ForceOpt = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the new model (or mix) is ready.")] = False,
    timeout: TimeoutOpt = 300.0,
    canary: ro.CanaryOpt = None,
    step: ro.StepOpt = 10,
    interval: ro.IntervalOpt = "5m",
    max_error_rate: ro.MaxErrorRateOpt = None,
    max_p99_ms: ro.MaxP99Opt = None,
    max_psi: ro.MaxPsiOpt = None,
    min_requests: ro.MinRequestsOpt = None,
    sticky_header: ro.StickyHeaderOpt = None,
    sticky_field: ro.StickyFieldOpt = None,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Replace the deployment's model (the old one serves until the new one is ready).

    Refused, with the differences listed, when the new model's target type, class labels or
    features differ from the current one's, unless --force. With --canary PERCENT the new model
    takes that share of the traffic first and steps up every --interval while its gates hold;
    follow it with `deckhand deployments rollout`."""
    _check_reason(reason)
    canary_body = ro.canary_body(
        canary, step=step, interval=interval, max_error_rate=max_error_rate, max_p99_ms=max_p99_ms,
        max_psi=max_psi, min_requests=min_requests, sticky_header=sticky_header, sticky_field=sticky_field,
    )  # fmt: skip
    with _errors():
        client = _client(server, token)
        current = client.get_deployment(deployment)
        if canary_body is not None:
            _start_canary(client, current, package, canary_body, reason, note, force, wait, timeout, output)
            return
        _deploy_package(
            client,
            package,
            lambda package_id: client.replace_model(current["id"], package_id, reason, note, force),
            wait=wait,
            timeout=timeout,
            output=output,
        )


def _start_canary(
    client: ControlPlaneClient,
    current: dict[str, Any],
    package: str,
    canary: dict[str, Any],
    reason: str,
    note: str | None,
    force: bool,
    wait: bool,
    timeout: float,
    output: Output,
) -> None:
    """`replace --canary`: the champion stays; --wait waits for the agent to serve the mix."""
    package_id = _package_id(client, package)
    since = _now_iso()
    dep = client.replace_model(current["id"], package_id, reason, note, force, canary=canary)
    if wait:
        dep = wait_until_ready(client, dep["id"], dep["servedModelId"], timeout, since=since)
    if output is Output.json:
        print_json(dep)
        return
    typer.echo(
        f"started a canary of model package {package_id} on deployment {dep['name']} ({dep['id']}) at "
        f"{canary['percent']} %; follow it with `deckhand deployments rollout {dep['id']}`"
    )


def _check_reason(reason: str) -> None:
    if reason not in REPLACE_REASONS:
        raise typer.BadParameter(f"{reason!r} is not one of {', '.join(REPLACE_REASONS)}", param_hint="--reason")


@deployments_app.command("history")
def deployments_history(
    deployment: DeploymentArg,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Every model the deployment has run, newest (the current one) first."""
    with _errors():
        client = _client(server, token)
        dep = client.get_deployment(deployment)
        found = client.list_revisions(dep["id"])
    if output is Output.json:
        print_json(found)
        return
    print_table(
        f"model revisions of deployment {dep['name']}",
        ["rev", "current", "model package", "created", "by", "reason", "note"],
        [
            [r["number"], "*" if r["current"] else "",
             f"{r['modelPackageName'] or '(deleted)'} {r['modelPackageId']}",
             _short_time(r["createdAt"]), r["createdBy"], r["reason"] or "(created)", r["note"]]
            for r in found
        ],
    )  # fmt: skip


@deployments_app.command("rollback")
def deployments_rollback(
    deployment: DeploymentArg,
    to: Annotated[
        int | None,
        typer.Option(
            "--to", min=1, metavar="REV", help="Revision to return to (default: the one before the current one)."
        ),
    ] = None,
    reason: ReasonOpt = DEFAULT_REASON,
    note: NoteOpt = None,
    force: ForceOpt = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the model is ready.")] = False,
    timeout: TimeoutOpt = 300.0,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Return to an earlier revision's model, as a new revision (made as `replace` makes one:
    the old model serves until the earlier one is ready). Already there: nothing changes."""
    _check_reason(reason)
    with _errors():
        client = _client(server, token)
        dep_id = client.get_deployment(deployment)["id"]
        since = _now_iso()
        result = client.rollback(dep_id, to, reason, note, force)
        revision = result["revision"]
        if wait and result["changed"]:
            wait_until_ready(client, dep_id, revision["modelPackageId"], timeout, since=since)
    if output is Output.json:
        print_json(result)
    elif not result["changed"]:
        typer.echo(result["message"])
    else:
        typer.echo(
            f"rolled back deployment {deployment} to revision {revision['rollbackTo']}: revision "
            f"{revision['number']} runs model package {revision['modelPackageName']} ({revision['modelPackageId']})"
            + (" and is ready" if wait else "")
        )


def _change_command(
    name: str,
    summary: str,
    change: Callable[[ControlPlaneClient, str], dict[str, Any]],
    report: Callable[[dict[str, Any], Output], None],
) -> None:
    """Add `deckhand deployments NAME DEPLOYMENT`: CHANGE makes the one change to the
    deployment and returns it, REPORT prints the result; SUMMARY is the command's help."""

    def command(
        deployment: DeploymentArg,
        server: ServerOpt = DEFAULT_URL,
        token: TokenOpt = None,
        output: OutputOpt = Output.table,
    ) -> None:
        with _errors():
            dep = change(_client(server, token), deployment)
        report(dep, output)

    command.__name__ = f"deployments_{name}"
    command.__doc__ = summary
    deployments_app.command(name)(command)


def _print_changed(done: str) -> Callable[[dict[str, Any], Output], None]:
    def report(dep: dict[str, Any], output: Output) -> None:
        if output is Output.json:
            print_json(dep)
        else:
            typer.echo(f"{done} deployment {dep['name']} ({dep['id']}) revision {dep['revision']}")

    return report


def _delete_deployment(client: ControlPlaneClient, deployment: str) -> dict[str, Any]:
    dep = client.get_deployment(deployment)
    client.delete_deployment(dep["id"])
    return dep


def _print_deleted(dep: dict[str, Any], output: Output) -> None:
    if output is Output.json:
        print_json({"id": dep["id"], "deleted": True})
    else:
        typer.echo(f"deleted deployment {dep['name']} ({dep['id']}); the agent stops it")


_change_command(
    "activate",
    "Activate a deployment.",
    lambda client, deployment: client.activate_deployment(deployment),
    _print_changed("activated"),
)
_change_command(
    "deactivate",
    "Deactivate a deployment.",
    lambda client, deployment: client.deactivate_deployment(deployment),
    _print_changed("deactivated"),
)
_change_command("delete", "Delete a deployment (the agent stops it).", _delete_deployment, _print_deleted)


# -- deckhand events -------------------------------------------------------------------------


@app.command("events")
def events(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    deployment: Annotated[str | None, typer.Option("--deployment", help="Only this deployment id.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=1000, metavar="N")] = 50,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Show events: API changes and agent actions, newest first."""
    with _errors():
        found = _client(server, token).list_events(env, deployment, limit)
    if output is Output.json:
        print_json(found)
        return
    print_table(
        "events",
        ["time", "action", "result", "duration", "message"],
        [
            [
                _short_time(e["timestamp"]),
                f"{e['action']} ({e['kind']})",
                e["result"],
                "" if e["durationSeconds"] is None else f"{e['durationSeconds']:.2f}s",
                e["message"],
            ]
            for e in found
        ],
    )


# -- deckhand tokens --------------------------------------------------------------------------

tokens_app = typer.Typer(name="tokens", help="API tokens (admin).", no_args_is_help=True)
app.add_typer(tokens_app)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="Token name (unique).")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = "read-only",
    env: Annotated[list[str] | None, typer.Option("--env", help="Environment of an agent token (repeatable).")] = None,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Create a token; it is printed once."""
    if role not in ROLES:
        raise typer.BadParameter(f"{role!r} is not one of {', '.join(ROLES)}", param_hint="--role")
    with _errors():
        created = _client(server, token).create_token(name, role, env or None)
    if output is Output.json:
        print_json(created)
        return
    typer.echo(f"created {created['role']} token {created['name']} (shown only once):", err=True)
    typer.echo(created["token"])


@tokens_app.command("list")
def tokens_list(server: ServerOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.table) -> None:
    """List tokens (never their secrets)."""
    with _errors():
        found = _client(server, token).list_tokens()
    if output is Output.json:
        print_json(found)
        return
    print_table(
        "API tokens",
        ["id", "name", "role", "environments", "token", "created"],
        [
            [t["id"], t["name"], t["role"], ", ".join(t["environmentIds"]), t["prefix"] + "…",
             _short_time(t["createdAt"])]
            for t in found
        ],
    )  # fmt: skip


@tokens_app.command("delete")
def tokens_delete(
    name: Annotated[str, typer.Argument(help="Token id or name.")],
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Delete (revoke) a token."""
    with _errors():
        _client(server, token).delete_token(name)
    typer.echo(f"deleted token {name}")

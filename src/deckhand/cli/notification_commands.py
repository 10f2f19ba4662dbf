"""`deckhand notifications ...`: channels (webhook, Slack, e-mail), policies, a test message,
what was delivered (docs/notifications.md). Secrets come from the environment, never from
the command line (where `ps` would show them)."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from deckhand.cli.control_plane_commands import DEFAULT_URL, ServerOpt, TokenOpt, _client, _errors, parse_pairs
from deckhand.cli.output import Output, OutputOpt, fail, print_json, print_table

app = typer.Typer()
notifications_app = typer.Typer(name="notifications", help="Notification channels and policies.", no_args_is_help=True)
app.add_typer(notifications_app)
SECRET_NAMES = {"webhook": "secret", "slack": "url", "email": "password"}
CHANNEL_KINDS = tuple(SECRET_NAMES)
POLICY_KINDS = ("service_health", "drift", "accuracy", "agent", "deployment_action")


@notifications_app.command("channel-add")
def channel_add(
    name: Annotated[str, typer.Argument(help="Channel name (unique).")],
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(CHANNEL_KINDS)}.")],
    url: Annotated[str | None, typer.Option(help="webhook: where to POST.")] = None,
    secret_env: Annotated[
        str | None,
        typer.Option(
            "--secret-env",
            metavar="VAR",
            help="The environment variable holding the secret: the webhook's HMAC key, the Slack "
            "webhook URL, or the SMTP password.",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="email: SMTP server.")] = None,
    port: Annotated[int | None, typer.Option(help="email: SMTP port (587).")] = None,
    sender: Annotated[str | None, typer.Option(help="email: From address.")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="email: a recipient (repeatable).")] = None,
    username: Annotated[str | None, typer.Option(help="email: SMTP login.")] = None,
    ca_file: Annotated[str | None, typer.Option(help="email: CA bundle for a private certificate.")] = None,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Add a channel. Its secret is read from --secret-env and never shown again."""
    if kind not in CHANNEL_KINDS:
        raise typer.BadParameter(f"{kind!r} is not one of {', '.join(CHANNEL_KINDS)}", param_hint="--kind")
    body: dict[str, Any] = {"name": name, "kind": kind}
    for key, value in (("host", host), ("port", port), ("sender", sender), ("recipients", to),
                       ("username", username), ("caFile", ca_file)):  # fmt: skip
        if value:
            body[key] = value
    if url and kind == "webhook":
        body["url"] = url
    if secret_env:
        secret = os.environ.get(secret_env)
        if not secret:
            fail(f"--secret-env {secret_env}: the variable is not set or empty")
        body[SECRET_NAMES[kind]] = secret
    elif kind == "slack":
        fail("a slack channel needs its webhook URL, a secret: pass --secret-env VAR")
    with _errors():
        created = _client(server, token).create_notification_channel(body)
    if output is Output.json:
        print_json(created)
    else:
        typer.echo(f"created {kind} channel {created['name']} id {created['id']}")


@notifications_app.command("channels")
def channels(server: ServerOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.table) -> None:
    """List the channels (secrets are never shown: only which are set)."""
    with _errors():
        found = _client(server, token).list_notification_channels()
    if output is Output.json:
        print_json(found)
        return
    rows = [[c["name"], c["kind"], c["config"].get("url") or c["config"].get("host") or "", ", ".join(c["secretsSet"])]
            for c in found]  # fmt: skip
    print_table("notification channels", ["name", "kind", "to", "secrets set"], rows)


@notifications_app.command("test")
def test_channel(
    channel: Annotated[str, typer.Argument(help="Channel id or name.")],
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Send a test message now; exit 1 if it was not delivered (the reason is printed)."""
    with _errors():
        delivery = _client(server, token).test_notification_channel(channel)
    if output is Output.json:
        print_json(delivery)
    elif delivery["state"] == "sent":
        typer.echo(f"sent a test message to {channel}")
    else:
        typer.echo(f"not delivered: {delivery['lastError']} (retried until {delivery['state']})", err=True)
    if delivery["state"] != "sent":
        raise typer.Exit(1)


@notifications_app.command("policy-add")
def policy_add(
    name: Annotated[str, typer.Argument(help="Policy name (unique).")],
    kind: Annotated[str, typer.Option(help=f"One of: {', '.join(POLICY_KINDS)}.")],
    channel: Annotated[list[str], typer.Option("--channel", help="A channel id or name (repeatable).")],
    deployment: Annotated[str | None, typer.Option(help="One deployment (default: every deployment).")] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="A setting, e.g. threshold=0.05 (repeatable)."),
    ] = None,
    min_interval: Annotated[
        int, typer.Option(min=1, help="Seconds between two notifications about the same subject.")
    ] = 3600,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Add a policy: what to watch, where to send, how often at most."""
    if kind not in POLICY_KINDS:
        raise typer.BadParameter(f"{kind!r} is not one of {', '.join(POLICY_KINDS)}", param_hint="--kind")
    body: dict[str, Any] = {
        "name": name, "kind": kind, "channelIds": channel, "settings": parse_pairs(setting, "--set"),
        "minIntervalSeconds": min_interval,
    }  # fmt: skip
    if deployment:
        body["deploymentId"] = deployment
    with _errors():
        created = _client(server, token).create_notification_policy(body)
    if output is Output.json:
        print_json(created)
    else:
        typer.echo(f"created {kind} policy {created['name']} id {created['id']}: {created['settings']}")


@notifications_app.command("policies")
def policies(server: ServerOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.table) -> None:
    """List the policies."""
    with _errors():
        found = _client(server, token).list_notification_policies()
    if output is Output.json:
        print_json(found)
        return
    rows = [[p["name"], p["kind"], p["deploymentId"] or "every", p["settings"], p["minIntervalSeconds"], p["enabled"]]
            for p in found]  # fmt: skip
    print_table("notification policies", ["name", "kind", "deployment", "settings", "interval s", "on"], rows)


@notifications_app.command("deliveries")
def deliveries(
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    policy: Annotated[str | None, typer.Option(help="Only this policy.")] = None,
    state: Annotated[str | None, typer.Option(help="pending, sent or failed.")] = None,
    server: ServerOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """What was sent, what is waiting for a retry, what failed and why (newest first)."""
    with _errors():
        found = _client(server, token).notification_deliveries(channel, policy, state)
    if output is Output.json:
        print_json(found)
        return
    rows = [[d["createdAt"], d["title"], d["state"], d["attempts"], d["lastError"] or ""] for d in found]
    print_table("notification deliveries", ["created", "title", "state", "attempts", "last error"], rows)

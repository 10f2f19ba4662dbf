"""Prediction environments: create, read, update, delete; revision bumps."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from deckhand.plugin.platforms import DEFAULT_PLUGIN_BY_PLATFORM
from deckhand.secrets import keep_masked, mask_mapping
from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment, Environment, utcnow
from deckhand.server.errors import Conflict
from deckhand.server.schemas.environments import (
    EnvironmentCreate,
    EnvironmentOut,
    EnvironmentStatusOut,
    EnvironmentUpdate,
)
from deckhand.server.services.events import record_api_event
from deckhand.server.services.lookup import find_environment
from deckhand.server.services.revision_channel import announce


def environment_out(env: Environment) -> EnvironmentOut:
    """What readers see: secret plugin config values are masked for everyone (write-only);
    only the environment's agent gets them, through its desired state."""
    status = None if env.status is None else EnvironmentStatusOut.from_row(env, prefix="status_", status=env.status)
    return EnvironmentOut.from_row(env, plugin_config=mask_mapping(env.plugin_config or {}), status=status)


def bump_revision(session: Session, environment_id: str) -> None:
    """Atomically add one to the environment's revision (the agent's change signal), and
    announce it to the other replicas' long polls at commit."""
    session.execute(
        update(Environment)
        .where(Environment.id == environment_id)
        .values(revision=Environment.revision + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    announce(session, environment_id)


def _check_name_free(session: Session, name: str, exclude_id: str | None = None) -> None:
    query = select(Environment.id).where(Environment.name == name)
    if exclude_id:
        query = query.where(Environment.id != exclude_id)
    if session.scalars(query).first():
        raise Conflict(f"name: a prediction environment named {name!r} exists; pick another name")


def create_environment(session: Session, principal: Principal, body: EnvironmentCreate) -> Environment:
    _check_name_free(session, body.name)
    plugin = body.plugin or DEFAULT_PLUGIN_BY_PLATFORM.get(body.platform) or "custom"
    env = Environment(
        name=body.name,
        description=body.description,
        platform=body.platform,
        plugin=plugin,
        plugin_config=body.plugin_config,
        key_value_config=body.key_value_config,
        monitoring_enabled=body.platform == "local" if body.monitoring_enabled is None else body.monitoring_enabled,
        revision=1,
        created_by=principal.name,
    )
    session.add(env)
    session.flush()
    record_api_event(
        session,
        principal,
        "environment.create",
        f"created prediction environment {env.name!r} (platform {env.platform}, plugin {plugin})",
        environment_id=env.id,
    )
    return env


def update_environment(session: Session, principal: Principal, ref: str, body: EnvironmentUpdate) -> Environment:
    env = find_environment(session, ref)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return env
    if body.name is not None and body.name != env.name:
        _check_name_free(session, body.name, exclude_id=env.id)
    if env.platform == "custom" and "plugin_config" in changes:
        if not (body.plugin_config or {}).get("command"):
            from deckhand.server.errors import InvalidField

            raise InvalidField("pluginConfig.command", "is required for platform 'custom'")
    if body.plugin_config is not None:  # masked secrets sent back unchanged keep their values
        changes["plugin_config"] = keep_masked(body.plugin_config, env.plugin_config or {})
    for key, value in changes.items():
        if value is not None:
            setattr(env, key, value)
    session.flush()
    bump_revision(session, env.id)
    record_api_event(
        session,
        principal,
        "environment.update",
        f"updated {', '.join(sorted(changes))} of prediction environment {env.name!r}",
        environment_id=env.id,
    )
    session.refresh(env)
    return env


def delete_environment(session: Session, principal: Principal, ref: str) -> Environment:
    env = find_environment(session, ref)
    live = session.scalar(
        select(func.count())
        .select_from(Deployment)
        .where(Deployment.environment_id == env.id, Deployment.deleted_at.is_(None))
    )
    if live:
        raise Conflict(
            f"environment {env.name!r} still has {live} deployment(s); delete them first "
            "(`deckhand deployments delete ID`)"
        )
    session.delete(env)
    announce(session, env.id)  # its agent's long polls on other replicas end (404) at once
    record_api_event(
        session,
        principal,
        "environment.delete",
        f"deleted prediction environment {env.name!r}",
        environment_id=env.id,
    )
    return env


def list_environments(session: Session, principal: Principal) -> list[Environment]:
    query = select(Environment).order_by(Environment.created_at, Environment.name)
    if principal.role == "agent":
        query = query.where(Environment.id.in_(principal.environment_ids))
    return list(session.scalars(query))

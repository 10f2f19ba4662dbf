"""API tokens: create (the secret is returned once), list, delete, bootstrap."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from deckhand.server.auth import PREFIX_SHOWN, Principal, generate_token, hash_token
from deckhand.server.db.models import ApiToken
from deckhand.server.errors import Conflict, NotFound
from deckhand.server.schemas.tokens import TokenCreate
from deckhand.server.services.events import record_api_event
from deckhand.server.services.lookup import find_environment

BOOTSTRAP_TOKEN_NAME = "bootstrap-admin"


def _new_token_row(name: str, role: str, token: str, env_ids: list[str], by: str | None) -> ApiToken:
    return ApiToken(
        name=name,
        role=role,
        environment_ids=env_ids,
        token_hash=hash_token(token),
        prefix=token[:PREFIX_SHOWN],
        created_by=by,
    )


def create_token(session: Session, principal: Principal, body: TokenCreate) -> tuple[ApiToken, str]:
    if session.scalars(select(ApiToken.id).where(ApiToken.name == body.name)).first():
        raise Conflict(f"name: a token named {body.name!r} exists; pick another name")
    env_ids = []
    for i, ref in enumerate(body.environment_ids):
        env_ids.append(find_environment(session, ref, field=f"environmentIds.{i}").id)
    token = generate_token()
    row = _new_token_row(body.name, body.role, token, sorted(set(env_ids)), principal.name)
    session.add(row)
    session.flush()
    record_api_event(session, principal, "token.create", f"created {body.role} token {body.name!r}")
    return row, token


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at)))


def delete_token(session: Session, principal: Principal, ref: str) -> ApiToken:
    row = session.get(ApiToken, ref) or session.scalars(select(ApiToken).where(ApiToken.name == ref)).first()
    if row is None:
        raise NotFound(f"token: no token with id or name {ref!r}; list them with `deckhand tokens list`")
    if row.role == "admin":
        admins = session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.role == "admin"))
        if admins == 1:
            raise Conflict(f"token {row.name!r} is the last admin token; create another admin token first")
    session.delete(row)
    record_api_event(session, principal, "token.delete", f"deleted token {row.name!r}")
    return row


def ensure_bootstrap_token(session: Session, preset: str | None) -> str | None:
    """With no token at all, create an admin token; return its secret (None if tokens exist)."""
    if session.scalar(select(func.count()).select_from(ApiToken)):
        return None
    token = preset or generate_token()
    session.add(_new_token_row(BOOTSTRAP_TOKEN_NAME, "admin", token, [], None))
    return token

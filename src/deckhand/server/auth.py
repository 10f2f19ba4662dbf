"""API tokens and roles.

Tokens are `dh_` + 43 URL-safe random characters; only their sha256 is stored, with a
short prefix to recognise them in listings. Roles:
- admin: everything;
- read-only: GET requests only (not the token list);
- agent: the agent endpoints and GETs of its own environments, their deployments and
  the model packages those deployments use.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from deckhand.server.errors import Forbidden, Unauthorized
from deckhand.server.state import ControlPlane, get_control_plane

TOKEN_PREFIX = "dh_"
PREFIX_SHOWN = 8


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def mask_token(token: str) -> str:
    """What may appear in logs and listings: the first characters and an ellipsis."""
    return token[:PREFIX_SHOWN] + "…"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, name, role and (for agents) its environments."""

    token_id: str
    name: str
    role: str
    environment_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_see_environment(self, environment_id: str) -> bool:
        return self.role != "agent" or environment_id in self.environment_ids


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(
            "missing Authorization header: send 'Authorization: Bearer <token>' "
            "(the CLI reads --token or DECKHAND_TOKEN)"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()


def authenticate(request: Request, cp: Annotated[ControlPlane, Depends(get_control_plane)]) -> Principal:
    from deckhand.server.db.models import ApiToken

    token = _bearer(request)
    digest = hash_token(token)
    with cp.db.reading() as session:
        row = session.execute(
            select(ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.environment_ids).where(
                ApiToken.token_hash == digest
            )
        ).first()
    if row is None:
        raise Unauthorized(f"invalid or revoked token {mask_token(token)}")
    principal = Principal(row.id, row.name, row.role, frozenset(row.environment_ids or ()))
    request.state.principal = principal
    return principal


def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden(f"token {principal.name!r} has role {principal.role!r}; this needs admin")
    return principal


def require_reader(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Any role may read; agents are further limited to their environments by the caller."""
    return principal


def require_user_reader(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """admin or read-only (agents may not list everything)."""
    if principal.role == "agent":
        raise Forbidden(f"token {principal.name!r} is an agent token; this needs admin or read-only")
    return principal


def require_agent(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.role not in ("agent", "admin"):
        raise Forbidden(
            f"token {principal.name!r} has role {principal.role!r}; agent endpoints need an agent or admin token"
        )
    return principal


# Dependency aliases for routers: `principal: AdminUser` etc.
AdminUser = Annotated[Principal, Depends(require_admin)]
Reader = Annotated[Principal, Depends(require_reader)]
UserReader = Annotated[Principal, Depends(require_user_reader)]
AgentUser = Annotated[Principal, Depends(require_agent)]

"""`/api/v1/tokens`: API tokens (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from deckhand.server.auth import AdminUser
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.schemas.tokens import TokenCreate, TokenCreated, TokenOut
from deckhand.server.services import tokens as svc
from deckhand.server.state import CP

router = APIRouter(prefix=f"{API_PREFIX}/tokens", tags=["tokens"])


@router.post("", status_code=201, response_model=TokenCreated, responses=errors(400, 403, 404, 409))
def create_token(
    body: TokenCreate,
    principal: AdminUser,
    cp: CP,
) -> TokenCreated:
    """The response holds the token itself, once; only its hash is stored."""
    with cp.db.writing() as session:
        row, token = svc.create_token(session, principal, body)
        return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=token)


@router.get("", response_model=list[TokenOut], responses=errors(403))
def list_tokens(_p: AdminUser, cp: CP) -> list[TokenOut]:
    with cp.db.reading() as session:
        return [TokenOut.model_validate(r) for r in svc.list_tokens(session)]


@router.delete("/{ref}", status_code=204, responses=errors(403, 404, 409))
def delete_token(
    ref: str,
    principal: AdminUser,
    cp: CP,
) -> Response:
    with cp.db.writing() as session:
        svc.delete_token(session, principal, ref)
    return Response(status_code=204)

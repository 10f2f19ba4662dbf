"""`/api/v1/tokens`: API tokens (admin only), and `/tokens/me`: the caller's own token (every role)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from deckhand.server.auth import AdminUser, Reader
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.schemas.tokens import TokenCreate, TokenCreated, TokenOut, TokenSelf
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


@router.get("/me", response_model=TokenSelf, responses=errors())
def who_am_i(principal: Reader) -> TokenSelf:
    """Name, role and environments of the token this request carries (the web UI shows
    admins their buttons from it); never the token itself."""
    return TokenSelf(
        id=principal.token_id,
        name=principal.name,
        role=principal.role,
        environment_ids=sorted(principal.environment_ids),
    )


@router.delete("/{ref}", status_code=204, responses=errors(403, 404, 409))
def delete_token(
    ref: str,
    principal: AdminUser,
    cp: CP,
) -> Response:
    with cp.db.writing() as session:
        svc.delete_token(session, principal, ref)
    return Response(status_code=204)

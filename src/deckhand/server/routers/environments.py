"""`/api/v1/environments`: prediction environments."""

from __future__ import annotations

from fastapi import APIRouter, Response

from deckhand.server.auth import AdminUser, Reader
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.schemas.environments import EnvironmentCreate, EnvironmentOut, EnvironmentUpdate
from deckhand.server.services import environments as svc
from deckhand.server.services.lookup import find_environment
from deckhand.server.state import CP

router = APIRouter(prefix=f"{API_PREFIX}/environments", tags=["prediction environments"])


@router.post("", status_code=201, response_model=EnvironmentOut, responses=errors(400, 403, 409))
def create_environment(
    body: EnvironmentCreate,
    principal: AdminUser,
    cp: CP,
) -> EnvironmentOut:
    with cp.db.writing() as session:
        env = svc.create_environment(session, principal, body)
        return svc.environment_out(env)


@router.get("", response_model=list[EnvironmentOut], responses=errors())
def list_environments(principal: Reader, cp: CP) -> list[EnvironmentOut]:
    with cp.db.reading() as session:
        return [svc.environment_out(e) for e in svc.list_environments(session, principal)]


@router.get("/{ref}", response_model=EnvironmentOut, responses=errors(403, 404))
def get_environment(
    ref: str,
    principal: Reader,
    cp: CP,
) -> EnvironmentOut:
    """By id or by name."""
    with cp.db.reading() as session:
        return svc.environment_out(find_environment(session, ref, principal=principal))


@router.patch("/{ref}", response_model=EnvironmentOut, responses=errors(400, 403, 404, 409))
def update_environment(
    ref: str,
    body: EnvironmentUpdate,
    principal: AdminUser,
    cp: CP,
) -> EnvironmentOut:
    with cp.db.writing() as session:
        env = svc.update_environment(session, principal, ref, body)
        out = svc.environment_out(env)
    cp.notifier.notify(out.id)
    return out


@router.delete("/{ref}", status_code=204, responses=errors(403, 404, 409))
def delete_environment(
    ref: str,
    principal: AdminUser,
    cp: CP,
) -> Response:
    with cp.db.writing() as session:
        env = svc.delete_environment(session, principal, ref)
        env_id = env.id
    cp.notifier.notify(env_id)
    return Response(status_code=204)

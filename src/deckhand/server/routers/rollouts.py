"""`/api/v1/deployments/{ref}/rollout[s]` and `.../challengers`: a deployment's canary (started
by `replace-model` with a `canary`) and its challengers (docs/rollouts.md)."""

from __future__ import annotations

from fastapi import APIRouter

from deckhand.server.auth import AdminUser, Reader
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.routers.deployments import write_change
from deckhand.server.schemas.deployments import DeploymentOut
from deckhand.server.schemas.rollouts import ChallengerIn, ChallengerOut, PromoteChallenger, RolloutOut
from deckhand.server.services import challengers, rollouts
from deckhand.server.services.lookup import find_deployment
from deckhand.server.state import CP

router = APIRouter(prefix=f"{API_PREFIX}/deployments", tags=["rollouts"])


@router.get("/{ref}/rollout", response_model=RolloutOut, responses=errors(403, 404, 409))
def get_rollout(ref: str, principal: Reader, cp: CP) -> RolloutOut:
    """The running canary, else the last one: its gates, the last values and verdicts, its share
    and when the current step is judged. 404 when the deployment has had none."""
    with cp.db.reading() as session:
        return rollouts.rollout_out(rollouts.latest(session, find_deployment(session, ref, principal)))


@router.get("/{ref}/rollouts", response_model=list[RolloutOut], responses=errors(403, 404, 409))
def list_rollouts(ref: str, principal: Reader, cp: CP) -> list[RolloutOut]:
    """Every canary of the deployment, newest first."""
    with cp.db.reading() as session:
        dep = find_deployment(session, ref, principal)
        return [rollouts.rollout_out(r) for r in rollouts.history(session, dep.id)]


@router.post("/{ref}/rollout/promote", response_model=DeploymentOut, responses=errors(403, 404, 409))
def promote_rollout(ref: str, principal: AdminUser, cp: CP) -> DeploymentOut:
    """Promote the running canary now: it becomes the next revision (reason and note as given
    to `replace-model`). 409 when no canary runs."""
    return write_change(cp, lambda s: rollouts.promote(s, principal, ref))


@router.post("/{ref}/rollout/abort", response_model=DeploymentOut, responses=errors(403, 404, 409))
def abort_rollout(ref: str, principal: AdminUser, cp: CP) -> DeploymentOut:
    """End the running canary; the champion keeps all traffic. 409 when no canary runs."""
    return write_change(cp, lambda s: rollouts.abort(s, principal, ref))


@router.get("/{ref}/challengers", response_model=list[ChallengerOut], responses=errors(403, 404, 409))
def list_challengers(ref: str, principal: Reader, cp: CP) -> list[ChallengerOut]:
    with cp.db.reading() as session:
        return challengers.list_challengers(session, find_deployment(session, ref, principal))


@router.post("/{ref}/challengers", response_model=DeploymentOut, responses=errors(400, 403, 404, 409))
def add_challenger(ref: str, body: ChallengerIn, principal: AdminUser, cp: CP) -> DeploymentOut:
    """Add a challenger (at most 5): it scores a copy of live requests, its answers are recorded
    and never returned. Refused (409) when incompatible with the champion, unless `force`;
    adding one that is there already changes nothing."""
    return write_change(cp, lambda s: challengers.add_challenger(s, principal, ref, body))


@router.delete("/{ref}/challengers/{package_id}", response_model=DeploymentOut, responses=errors(403, 404, 409))
def remove_challenger(ref: str, package_id: str, principal: AdminUser, cp: CP) -> DeploymentOut:
    return write_change(cp, lambda s: challengers.remove_challenger(s, principal, ref, package_id))


@router.post(
    "/{ref}/challengers/{package_id}/promote", response_model=DeploymentOut, responses=errors(400, 403, 404, 409)
)
def promote_challenger(
    ref: str, package_id: str, principal: AdminUser, cp: CP, body: PromoteChallenger | None = None
) -> DeploymentOut:
    """The challenger becomes the champion as the next revision (made as `replace-model` makes
    one) and leaves the challengers; the old champion does not become a challenger."""
    change = body or PromoteChallenger.model_validate({})
    return write_change(cp, lambda s: challengers.promote_challenger(s, principal, ref, package_id, change))

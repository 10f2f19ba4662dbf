"""Mix files for download: what a deployment with a canary or challengers serves, as one
artifact (docs/rollouts.md).

The desired state names a split deployment's model `mix-<16 hex>`; agents (and the
Kubernetes plugin's image builds) download it from the package artifact route like any
package. The control plane builds the file from the member packages on the first download,
in the artifact store's local `mixes_dir` (`<artifacts>/mixes/`), and keeps it with its
checksum beside it; a later download is a file read. With an object store each replica
fetches the members into its own cache and builds its own copy: the mix's bytes depend only
on its members (write_mix), so every replica serves one checksum (agents key a mix by its
id and check each download against its own header; nothing compares two requests' checksums).
Only mixes some live deployment serves now can be downloaded: an agent that asks for one the
rollout has already stepped past gets a 404 and follows the next desired state.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from deckhand.packages.container import file_sha256
from deckhand.packages.mix import ALL_COPIED, MIX_ID_PREFIX, MixMember, write_mix
from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment, ModelPackage
from deckhand.server.errors import NotFound
from deckhand.server.services.artifacts import ArtifactDamaged, ArtifactStore
from deckhand.server.services.traffic import Traffic, traffic_of


def is_mix_id(package_id: str) -> bool:
    return package_id.startswith(MIX_ID_PREFIX)


def _not_served(served_id: str) -> NotFound:
    return NotFound(
        f"modelPackage: no live deployment serves the mix {served_id!r} now (its canary moved on, or ended); "
        "follow the current desired state"
    )


def _served_mixes(session: Session, where: Any = None) -> dict[str, tuple[str, Traffic]]:
    """Mix id -> (champion id, traffic) of every live deployment matching `where` that serves
    a mix now: the traffic queries, and one for those deployments' champions."""
    traffic = traffic_of(session, where)
    if not traffic:
        return {}
    rows = session.execute(select(Deployment.id, Deployment.model_package_id).where(Deployment.id.in_(list(traffic))))
    champions: dict[str, str] = {dep_id: package_id for dep_id, package_id in rows}
    return {
        split.served_model_id(champions[dep_id]): (champions[dep_id], split)
        for dep_id, split in traffic.items()
        if dep_id in champions
    }


def _members(session: Session, principal: Principal, served_id: str) -> tuple[list[MixMember], Traffic]:
    """The members (without their files) and traffic (sticky rule, association ids, copy share) of the mix
    `served_id`, read from the deployment that serves it now (one the principal may see)."""
    where = Deployment.environment_id.in_(principal.environment_ids) if principal.role == "agent" else None
    found = _served_mixes(session, where).get(served_id)
    if found is None:
        raise _not_served(served_id)
    champion, split = found
    canary = split.canary
    share = int(canary["percent"]) if canary else 0
    roles = [("champion", champion, 100 - share)]
    if canary:
        roles.append(("canary", canary["modelId"], share))
    roles += [("challenger", c["modelId"], 0) for c in split.challengers]
    ids = [package_id for _, package_id, _ in roles]
    rows = session.execute(select(ModelPackage.id, ModelPackage.sha256).where(ModelPackage.id.in_(ids)))
    shas: dict[str, str] = {package_id: sha256 for package_id, sha256 in rows}
    members = [MixMember(package_id, role, percent, shas[package_id]) for role, package_id, percent in roles]
    return members, split


def _with_sources(store: ArtifactStore, members: list[MixMember], served_id: str) -> list[MixMember]:
    """The members with their local package files (fetched from an object store if need be)."""
    found = []
    for member in members:
        problem = "is missing from"
        try:
            source = store.local_copy(member.model_id, member.sha256)
        except ArtifactDamaged:
            source, problem = None, "does not match its checksum in"
        if source is None:
            raise NotFound(
                f"modelPackage: the artifact of {member.model_id}, {member.role} of mix {served_id}, {problem} "
                f"{store.description}; upload the package again"
            )
        found.append(dataclasses.replace(member, source=source))
    return found


def mix_artifact(session: Session, principal: Principal, store: ArtifactStore, served_id: str) -> tuple[Path, str]:
    """The mix file `served_id` and its sha256, built on the first request."""
    members, split = _members(session, principal, served_id)
    directory = store.mixes_dir
    target = directory / f"{served_id}.dhpkg"
    checksum = directory / f"{served_id}.sha256"
    if target.is_file() and checksum.is_file():
        return target, checksum.read_text().strip()
    directory.mkdir(mode=0o700, exist_ok=True)
    members = _with_sources(store, members, served_id)
    write_mix(target, served_id, members, split.sticky, split.association, split.copy_percent or ALL_COPIED)
    digest = file_sha256(target)
    tmp = checksum.with_name(f".{checksum.name}.{os.getpid()}.tmp")
    tmp.write_text(digest + "\n")
    os.replace(tmp, checksum)
    _prune(session, store, keep=served_id, members={m.model_id for m in members})
    return target, digest


def _prune(session: Session, store: ArtifactStore, keep: str, members: set[str]) -> None:
    """Delete the mixes no live deployment serves any more: each step of a canary is a new
    mix holding whole member packages, so they would otherwise pile up. One that is needed
    again (a rolled-back step cannot be) is simply built again. Likewise the local copies of
    packages (an object store's) that no served mix holds."""
    served_mixes = _served_mixes(session)
    served = {*served_mixes, keep}
    for path in store.mixes_dir.glob(f"{MIX_ID_PREFIX}*"):
        if path.name.split(".", 1)[0] not in served:
            path.unlink(missing_ok=True)
    for champion, split in served_mixes.values():
        members |= {champion, *(c["modelId"] for c in split.challengers)}
        if split.canary:
            members.add(split.canary["modelId"])
    store.keep_local_copies(members)

"""Model packages: streamed upload with checksum verification, metadata, download."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from deckhand.server.auth import Principal
from deckhand.server.db.models import Deployment, ModelPackage, new_id
from deckhand.server.errors import BadRequest, Conflict, InvalidField, PayloadTooLarge
from deckhand.server.schemas.packages import ModelPackageOut
from deckhand.server.services.artifacts import ArtifactStoreError
from deckhand.server.services.events import record_api_event
from deckhand.server.services.lookup import find_package, package_not_found
from deckhand.server.services.traffic import shadow_and_canary_uses
from deckhand.server.state import ControlPlane

log = logging.getLogger(__name__)
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def package_out(package: ModelPackage) -> ModelPackageOut:
    return ModelPackageOut.model_validate(package)


def parse_expected_sha256(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    value = value.strip().lower()
    if not SHA256_RE.match(value):
        raise InvalidField(field, f"expected 64 hexadecimal digits (a sha256), found {value!r}")
    return value


async def receive_package(
    cp: ControlPlane, principal: Principal, body: AsyncIterator[bytes], expected: str | None
) -> ModelPackage:
    """Stream the body to the artifact store, verify it, read its manifest, record it."""
    from deckhand.packages.container import read_manifest
    from deckhand.packages.errors import PackageError

    upload = cp.artifacts.new_upload()
    try:
        async for chunk in body:
            if chunk:
                upload.write(chunk)
                if upload.size > cp.settings.max_upload_bytes:
                    raise PayloadTooLarge(
                        f"body: the package exceeds the server's limit of {cp.settings.max_upload_bytes} bytes"
                    )
        digest = await run_in_threadpool(upload.finish)
        if upload.size == 0:
            raise BadRequest("body: empty; send the package file's bytes as the request body")
        if expected and digest != expected:
            raise BadRequest(
                f"sha256: checksum mismatch: the client said {expected}, the received "
                f"{upload.size} bytes hash to {digest}; the upload was damaged, send it again"
            )
        try:
            manifest = await run_in_threadpool(read_manifest, upload.path, cp.settings.package_limits)
        except PackageError as exc:
            raise BadRequest(
                "body: not a valid model package: " + str(exc).replace(str(upload.path), "upload")
            ) from exc
        package_id = new_id()
        await run_in_threadpool(cp.artifacts.commit, upload, package_id)
    except BaseException:
        upload.discard()
        raise

    def _record() -> ModelPackage:
        with cp.db.writing() as session:
            package = ModelPackage(
                id=package_id,
                name=manifest.name,
                format=manifest.format,
                target_type=manifest.target_type,
                class_labels=manifest.class_labels,
                features=[f.model_dump(mode="json") for f in manifest.features],
                sha256=digest,
                size=upload.size,
                manifest=manifest.model_dump(mode="json"),
                created_by=principal.name,
            )
            session.add(package)
            record_api_event(
                session,
                principal,
                "modelPackage.upload",
                f"uploaded model package {manifest.name!r} ({manifest.format}, "
                f"{upload.size} bytes, sha256 {digest[:12]}…)",
            )
            return package

    try:
        package = await run_in_threadpool(_record)
    except BaseException:
        with contextlib.suppress(ArtifactStoreError):  # the error that matters is the one above
            await run_in_threadpool(cp.artifacts.delete, package_id)
        raise
    log.info(
        "model package stored id=%s name=%s size=%d sha256=%s",
        package_id,
        manifest.name,
        upload.size,
        digest,
    )
    return package


def readable_package(session: Session, principal: Principal, ref: str) -> ModelPackage:
    """The package `ref` names, if `principal` may read it: agents may read only packages that
    a deployment in one of their environments uses."""
    package = find_package(session, ref, field="modelPackage")
    if principal.role != "agent":
        return package
    used = session.scalar(
        select(
            exists().where(
                Deployment.model_package_id == package.id,
                Deployment.environment_id.in_(principal.environment_ids),
            )
        )
    )
    if not used:  # as if it did not exist: an agent learns nothing beyond its environments
        raise package_not_found(package.id, "modelPackage")
    return package


def delete_package(session: Session, principal: Principal, ref: str) -> ModelPackage:
    package = find_package(session, ref, field="modelPackage")
    users = session.scalar(
        select(func.count())
        .select_from(Deployment)
        .where(Deployment.model_package_id == package.id, Deployment.deleted_at.is_(None))
    )
    if users:
        raise Conflict(
            f"model package {package.id} is used by {users} deployment(s); replace their model or delete them first"
        )
    if shadow_and_canary_uses(session, package.id):
        raise Conflict(
            f"model package {package.id} is a running canary or a challenger of a deployment; abort the canary "
            "or remove the challenger first (`deckhand deployments rollout|challengers ID` shows which)"
        )
    # Rows of deleted deployments not yet purged still point here: purge them now.
    for dep in session.scalars(select(Deployment).where(Deployment.model_package_id == package.id)):
        session.delete(dep)
    session.delete(package)
    record_api_event(session, principal, "modelPackage.delete", f"deleted model package {package.name!r}")
    return package


def list_packages(session: Session) -> list[ModelPackage]:
    return list(session.scalars(select(ModelPackage).order_by(ModelPackage.created_at)))

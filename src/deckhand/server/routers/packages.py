"""`/api/v1/model-packages`: upload (streamed), list, show, download, delete."""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from deckhand.server.auth import AdminUser, Reader, UserReader
from deckhand.server.errors import NotFound, PayloadTooLarge
from deckhand.server.routers.common import API_PREFIX, errors
from deckhand.server.schemas.packages import ModelPackageOut
from deckhand.server.services import mixes
from deckhand.server.services import packages as svc
from deckhand.server.services.artifacts import Artifact, ArtifactStoreError
from deckhand.server.state import CP

log = logging.getLogger(__name__)
router = APIRouter(prefix=f"{API_PREFIX}/model-packages", tags=["model packages"])


@router.post(
    "",
    status_code=201,
    response_model=ModelPackageOut,
    responses=errors(400, 403, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_package(
    request: Request,
    principal: AdminUser,
    cp: CP,
    sha256: Annotated[str | None, Query(description="Expected sha256 of the body.")] = None,
    x_checksum_sha256: Annotated[str | None, Header()] = None,
) -> ModelPackageOut:
    """Upload a package file as the raw request body; its manifest gives the metadata."""
    expected_query = svc.parse_expected_sha256(sha256, "sha256")
    expected_header = svc.parse_expected_sha256(x_checksum_sha256, "X-Checksum-Sha256")
    expected = expected_query or expected_header
    if expected_query and expected_header and expected_query != expected_header:
        from deckhand.server.errors import InvalidField

        raise InvalidField("sha256", "the query parameter and X-Checksum-Sha256 header differ")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cp.settings.max_upload_bytes:
        raise PayloadTooLarge(f"body: {declared} bytes exceeds the server's limit of {cp.settings.max_upload_bytes}")
    package = await svc.receive_package(cp, principal, request.stream(), expected)
    return svc.package_out(package)


@router.get("", response_model=list[ModelPackageOut], responses=errors(403))
def list_packages(_p: UserReader, cp: CP) -> list[ModelPackageOut]:
    with cp.db.reading() as session:
        return [svc.package_out(p) for p in svc.list_packages(session)]


@router.get("/{package_id}", response_model=ModelPackageOut, responses=errors(403, 404))
def get_package(package_id: str, principal: Reader, cp: CP) -> ModelPackageOut:
    with cp.db.reading() as session:
        return svc.package_out(svc.readable_package(session, principal, package_id))


@router.get(
    "/{package_id}/artifact",
    response_class=FileResponse,
    responses={
        **errors(403, 404),
        200: {"content": {"application/octet-stream": {}}, "description": "The package file"},
    },
)
def download_package(package_id: str, principal: Reader, cp: CP) -> Response:
    """The package file, with its sha256 in `X-Checksum-Sha256`. A `mix-...` id (the desired
    state's name for what a deployment with a canary or challengers serves) downloads that
    mix, built from its member packages on first use (`services.mixes`)."""
    if mixes.is_mix_id(package_id):
        with cp.db.reading() as session:
            path, sha256 = mixes.mix_artifact(session, principal, cp.artifacts, package_id)
        return FileResponse(
            path,
            media_type="application/octet-stream",
            filename=f"{package_id}.dhpkg",
            headers={"X-Checksum-Sha256": sha256},
        )
    with cp.db.reading() as session:
        package = svc.readable_package(session, principal, package_id)
    artifact = cp.artifacts.open(package.id)
    if artifact is None:
        raise NotFound(
            f"modelPackage: the artifact of {package.id} is missing from {cp.artifacts.description}; "
            "upload the package again"
        )
    return _artifact_response(artifact, f"{package.name}-{package.id}.dhpkg", package.sha256)


def _artifact_response(artifact: Artifact, filename: str, sha256: str) -> Response:
    headers = {"X-Checksum-Sha256": sha256}
    if artifact.path is not None:
        return FileResponse(artifact.path, media_type="application/octet-stream", filename=filename, headers=headers)
    # An object store's stream: Starlette iterates a plain iterator in a worker thread.
    headers["Content-Length"] = str(artifact.size)
    headers["Content-Disposition"] = _content_disposition(filename)
    return StreamingResponse(artifact.chunks(), media_type="application/octet-stream", headers=headers)


def _content_disposition(filename: str) -> str:
    """As FileResponse writes it: RFC 5987 form for a name that is not plain ASCII."""
    quoted = quote(filename)
    return f"attachment; filename*=utf-8''{quoted}" if quoted != filename else f'attachment; filename="{filename}"'


@router.delete("/{package_id}", status_code=204, responses=errors(403, 404, 409))
def delete_package(
    package_id: str,
    principal: AdminUser,
    cp: CP,
) -> Response:
    with cp.db.writing() as session:
        package = svc.delete_package(session, principal, package_id)
    try:
        cp.artifacts.delete(package.id)
    except ArtifactStoreError as exc:  # the package is deleted all the same: its file is only left over
        log.warning("model package deleted, its artifact left in the store id=%s error=%s", package.id, exc)
    return Response(status_code=204)

"""The prediction server's admin listener: model changes, behind a token, off by default.

A package is code (its pickle runs when loaded), so uploading one is running code on the
server. The public listener, which a Docker proxy or a Kubernetes Ingress exposes, never
serves these routes; they exist only when `deckhand serve --models-dir DIR --admin-port P`
is given with a token, on a second socket bound to `--admin-host` (127.0.0.1 by default):

    GET    /ping                     liveness
    GET    /deployments              every deployment and its state
    POST   /deployments/<id>         upload a package (streamed to disk, then verified)
    DELETE /deployments/<id>         remove a deployment

Every request needs `Authorization: Bearer <token>`; only the token's sha256 is held.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from deckhand import deployment_dirs
from deckhand.packages import PackageError, read_manifest
from deckhand.serving.config import ServeConfig
from deckhand.serving.dataplane import DataPlane
from deckhand.serving.http import HttpError, Scope, body_chunks, header, json_body, send_response
from deckhand.serving.routing import Request, Route, RouteTable

if TYPE_CHECKING:
    from deckhand.serving.watcher import ModelsDirWatcher

MIN_TOKEN_LENGTH = 24


def token_sha256(token: str) -> str:
    """What the server keeps of the admin token; refuses a token too short to be secret."""
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"the admin token has {len(token)} characters, fewer than {MIN_TOKEN_LENGTH}; generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return hashlib.sha256(token.encode()).hexdigest()


class AdminApp:
    """ASGI handler for requests that arrived on the admin socket."""

    def __init__(self, config: ServeConfig, plane: DataPlane, watcher: ModelsDirWatcher | None) -> None:
        assert config.models_dir is not None and config.admin_token_sha256 is not None and watcher is not None
        self.config = config
        self.plane = plane
        self.watcher = watcher
        self.models_dir: Path = config.models_dir
        self._token_sha256 = config.admin_token_sha256
        self.routes = RouteTable(
            [
                Route("GET", "/ping", self.ping),
                Route("GET", "/deployments", self.deployments),
                Route("POST", "/deployments/{id}", self.upload),
                Route("DELETE", "/deployments/{id}", self.delete),
            ],
            listener="admin",
            not_found_hint="it serves GET /deployments and POST|DELETE /deployments/<id> "
            "(predictions are on the public listener)",
            guard=self._authorize,
        )

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self.routes(scope, receive, send)

    def _authorize(self, scope: Scope) -> None:
        scheme, _, token = header(scope, b"authorization").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpError(
                401,
                "the admin listener needs 'Authorization: Bearer <admin token>'",
                headers=[(b"www-authenticate", b"Bearer")],
            )
        presented = hashlib.sha256(token.strip().encode()).hexdigest()
        if not hmac.compare_digest(presented, self._token_sha256):
            raise HttpError(401, "wrong admin token", headers=[(b"www-authenticate", b"Bearer")])

    def _dir_name(self, ref: str) -> str:
        entry = self.plane.repository.resolve(ref)
        if entry is not None:
            return entry.key
        prefix = self.config.deployment_dir_prefix
        return ref if ref.startswith(prefix) else f"{prefix}{ref}"

    async def _receive_to_file(self, scope: Scope, receive: Any, target: Path) -> None:
        """Stream the body to `target` (never whole in memory), up to max_upload_bytes."""
        with open(target, "wb") as handle:
            async for chunk in body_chunks(scope, receive, self.config.max_upload_bytes, "--max-upload-mb", "package"):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())

    # -- the routes ---------------------------------------------------------------------
    async def ping(self, request: Request) -> None:
        await send_response(request.send, 200, json_body({"message": "OK"}))

    async def deployments(self, request: Request) -> None:
        await send_response(request.send, 200, json_body({"data": self.plane.deployments()}))

    async def upload(self, request: Request) -> None:
        """Stream the package to disk, check it, install it as the deployment's directory
        and load it: 201 when it serves, 422 when it does not load (the error in the body)."""
        scope, receive = request.scope, request.receive
        name = self._dir_name(request.params["id"])
        try:
            deployment_dirs.check_dir_name(name)
        except deployment_dirs.LayoutError as exc:
            raise HttpError(422, str(exc)) from exc
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        deployment_id = query.get("deploymentId", [name.removeprefix(self.config.deployment_dir_prefix)])[0]
        staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=self.models_dir))
        try:
            package = staging / f"model-{secrets.token_hex(4)}.dhpkg"
            await self._receive_to_file(scope, receive, package)

            def install() -> tuple[bool, dict[str, Any]]:
                manifest = read_manifest(package, self.config.package_limits)  # bounded before inflating
                model_id = query.get("modelId", [manifest.name])[0]
                deployment_dirs.install(self.models_dir, name, deployment_id, model_id, package)
                ok = self.watcher.sync_dir(name)
                entry = self.plane.repository.resolve(name)
                return ok, entry.info() if entry else {}

            try:
                ok, info = await asyncio.get_running_loop().run_in_executor(None, install)
            except (PackageError, deployment_dirs.LayoutError) as exc:
                raise HttpError(400 if isinstance(exc, PackageError) else 422, str(exc)) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        await send_response(request.send, 201 if ok else 422, json_body(info))

    async def delete(self, request: Request) -> None:
        entry = self.plane.deployment(request.params["id"])
        await asyncio.get_running_loop().run_in_executor(None, deployment_dirs.remove, self.models_dir, entry.key)
        self.plane.repository.remove(entry.key)
        await send_response(request.send, 200, json_body({"message": f"deployment {entry.key} removed"}))

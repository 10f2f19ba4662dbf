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
from deckhand.serving.http import HttpError, Scope, body_chunks, header, json_body, send_response

if TYPE_CHECKING:
    from deckhand.serving.app import PredictionServer

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

    def __init__(self, server: PredictionServer) -> None:
        self.server = server
        self.config = server.config
        assert self.config.models_dir is not None and self.config.admin_token_sha256 is not None
        self.models_dir: Path = self.config.models_dir
        self._token_sha256 = self.config.admin_token_sha256

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        method = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        try:
            self._authorize(scope)
            parts = path.split("/")[1:]
            if path == "/ping" and method == "GET":
                await send_response(send, 200, json_body({"message": "OK"}))
            elif path == "/deployments" and method == "GET":
                entries = self.server.repository.entries()
                await send_response(send, 200, json_body({"data": [e.info() for e in entries]}))
            elif len(parts) == 2 and parts[0] == "deployments" and method == "POST":
                await self._upload(scope, receive, send, parts[1])
            elif len(parts) == 2 and parts[0] == "deployments" and method == "DELETE":
                await self._delete(send, parts[1])
            else:
                raise HttpError(
                    404,
                    f"no route {method} {path} on the admin listener; it serves GET /deployments and "
                    "POST|DELETE /deployments/<id> (predictions are on the public listener)",
                )
        except HttpError as exc:
            await send_response(send, exc.status, json_body({"message": exc.message}), headers=exc.headers)

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
        entry = self.server.repository.resolve(ref)
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

    async def _upload(self, scope: Scope, receive: Any, send: Any, ref: str) -> None:
        name = self._dir_name(ref)
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
                ok = self.server.watcher.sync_dir(name)  # type: ignore[union-attr]
                entry = self.server.repository.resolve(name)
                return ok, entry.info() if entry else {}

            try:
                ok, info = await asyncio.get_running_loop().run_in_executor(None, install)
            except (PackageError, deployment_dirs.LayoutError) as exc:
                raise HttpError(400 if isinstance(exc, PackageError) else 422, str(exc)) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        await send_response(send, 201 if ok else 422, json_body(info))

    async def _delete(self, send: Any, ref: str) -> None:
        entry = self.server.entry(ref)
        await asyncio.get_running_loop().run_in_executor(None, deployment_dirs.remove, self.models_dir, entry.key)
        self.server.repository.remove(entry.key)
        await send_response(send, 200, json_body({"message": f"deployment {entry.key} removed"}))

"""`ControlPlaneClient`: one method per API call, errors as `ControlPlaneError`.

Uploads stream the file (with its sha256 sent ahead for the server to verify);
downloads stream to a temp file beside the destination, check the sha256 the server
announced, then rename, so a partial download never has the final name.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from deckhand.client.errors import ControlPlaneError

API = "/api/v1"
CHUNK = 1 << 20
# Called with (bytes done, total bytes) while uploading or downloading.
Progress = Callable[[int, int], None]


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("detail"):
        detail = body["detail"]
        return detail if isinstance(detail, str) else str(detail)
    text = response.text.strip()
    return text[:500] or response.reason_phrase or f"HTTP {response.status_code}"


def _error_list(response: httpx.Response) -> list[dict[str, Any]]:
    """The `errors` of an error body (each problem's field and message), or none."""
    try:
        body = response.json()
    except ValueError:
        return []
    found = body.get("errors") if isinstance(body, dict) else None
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def _transport_error(base_url: str, method: str, path: str, exc: httpx.TransportError) -> ControlPlaneError:
    if isinstance(exc, httpx.TimeoutException):
        return ControlPlaneError(0, f"control plane at {base_url} did not answer {method} {path} in time ({exc})")
    return ControlPlaneError(0, f"cannot reach the control plane at {base_url}: {exc}; is it running?")


class ControlPlaneClient:
    def __init__(self, base_url: str, token: str | None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": "deckhand-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    # -- plumbing -------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _transport_error(self.base_url, method, path, exc) from exc
        if response.status_code >= 400:
            raise ControlPlaneError(response.status_code, _error_message(response), _error_list(response))
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @staticmethod
    def _without_none(**values: Any) -> dict[str, Any]:
        """The values that are set: query parameters, and the optional fields of a body."""
        return {k: v for k, v in values.items() if v is not None}

    # -- service --------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/healthz")
        return result

    # -- model packages ------------------------------------------------------------------

    def upload_package(self, path: Path | str, progress: Progress | None = None) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise ControlPlaneError(0, f"{path}: no such package file")
        size = path.stat().st_size
        from deckhand.packages.container import file_sha256  # here: deckhand.packages imports numpy

        sha256 = file_sha256(path)

        def body() -> Iterator[bytes]:
            done = 0
            with open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    done += len(chunk)
                    yield chunk
                    if progress:
                        progress(done, size)

        result: dict[str, Any] = self._json(
            "POST",
            f"{API}/model-packages",
            content=body(),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(size),
                "X-Checksum-Sha256": sha256,
            },
            timeout=httpx.Timeout(self._timeout, write=None, read=max(self._timeout, 300.0)),
        )
        return result

    def list_packages(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", f"{API}/model-packages")
        return result

    def get_package(self, package_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"{API}/model-packages/{package_id}")
        return result

    def delete_package(self, package_id: str) -> None:
        self._json("DELETE", f"{API}/model-packages/{package_id}")

    def download_package(self, package_id: str, dest: Path | str, progress: Progress | None = None) -> Path:
        """Stream the artifact to `dest` (a file path, or a directory: `<id>.dhpkg` in it)."""
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / f"{package_id}.dhpkg"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        url = f"{API}/model-packages/{package_id}/artifact"
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ControlPlaneError(response.status_code, _error_message(response))
                expected = response.headers.get("x-checksum-sha256", "").lower()
                total = int(response.headers.get("content-length") or 0)
                digest = hashlib.sha256()
                done = 0
                with open(tmp, "wb") as handle:
                    for chunk in response.iter_bytes(CHUNK):
                        handle.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
                    handle.flush()
                    os.fsync(handle.fileno())
            actual = digest.hexdigest()
            if expected and actual != expected:
                raise ControlPlaneError(
                    0,
                    f"download of model package {package_id} is damaged: the server announced "
                    f"sha256 {expected}, received {done} bytes hashing to {actual}; retry",
                )
            os.replace(tmp, dest)
        except httpx.TransportError as exc:
            raise ControlPlaneError(
                0, f"download of model package {package_id} from {self.base_url} failed: {exc}"
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    # -- prediction environments -----------------------------------------------------------

    def create_environment(self, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"{API}/environments", json=fields)
        return result

    def get_environment(self, id_or_name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"{API}/environments/{id_or_name}")
        return result

    def list_environments(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", f"{API}/environments")
        return result

    def update_environment(self, id_or_name: str, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._json("PATCH", f"{API}/environments/{id_or_name}", json=fields)
        return result

    def delete_environment(self, id_or_name: str) -> None:
        self._json("DELETE", f"{API}/environments/{id_or_name}")

    # -- deployments -----------------------------------------------------------------------

    def create_deployment(
        self,
        name: str,
        environment_id: str,
        model_package_id: str,
        description: str | None = None,
        key_value_config: dict[str, Any] | None = None,
        active: bool = True,
        association_id: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`association_id`: {"column": name, "generate": bool} (docs/accuracy.md)."""
        body: dict[str, Any] = {
            "name": name,
            "environmentId": environment_id,
            "modelPackageId": model_package_id,
            "active": active,
            **self._without_none(
                description=description, keyValueConfig=key_value_config, associationId=association_id
            ),
        }
        result: dict[str, Any] = self._json("POST", f"{API}/deployments", json=body)
        return result

    def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"{API}/deployments/{deployment_id}")
        return result

    def list_deployments(self, environment_id: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(
            "GET", f"{API}/deployments", params=self._without_none(environmentId=environment_id)
        )
        return result

    def activate_deployment(self, deployment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"{API}/deployments/{deployment_id}/activate")
        return result

    def deactivate_deployment(self, deployment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"{API}/deployments/{deployment_id}/deactivate")
        return result

    # Short names, as in the design notes.
    activate = activate_deployment
    deactivate = deactivate_deployment

    def replace_model(
        self,
        deployment_id: str,
        model_package_id: str,
        reason: str | None = None,
        note: str | None = None,
        force: bool = False,
        canary: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new model revision; `reason` is one of the server's list (default `other`). An
        incompatible package is refused (409, each difference in the error's `errors`) unless `force`.
        With `canary` (`{"percent", "step", "intervalSeconds", "gates", "sticky"}`), the package
        starts as a canary instead (docs/rollouts.md)."""
        body = {
            "modelPackageId": model_package_id,
            "force": force,
            **self._without_none(reason=reason, note=note, canary=canary),
        }
        result: dict[str, Any] = self._json("POST", f"{API}/deployments/{deployment_id}/replace-model", json=body)
        return result

    def start_canary(
        self, deployment_id: str, model_package_id: str, canary: dict[str, Any], **change: Any
    ) -> dict[str, Any]:
        """`replace_model` with a canary; `change` takes reason, note, force."""
        return self.replace_model(deployment_id, model_package_id, canary=canary, **change)

    # -- rollouts and challengers ------------------------------------------------------------

    def get_rollout(self, deployment_id: str) -> dict[str, Any]:
        """The running canary, else the last one (404 when the deployment has had none)."""
        result: dict[str, Any] = self._json("GET", f"{API}/deployments/{deployment_id}/rollout")
        return result

    def list_rollouts(self, deployment_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", f"{API}/deployments/{deployment_id}/rollouts")
        return result

    def promote_rollout(self, deployment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"{API}/deployments/{deployment_id}/rollout/promote")
        return result

    def abort_rollout(self, deployment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"{API}/deployments/{deployment_id}/rollout/abort")
        return result

    def list_challengers(self, deployment_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", f"{API}/deployments/{deployment_id}/challengers")
        return result

    def add_challenger(self, deployment_id: str, model_package_id: str, force: bool = False) -> dict[str, Any]:
        body = {"modelPackageId": model_package_id, "force": force}
        result: dict[str, Any] = self._json("POST", f"{API}/deployments/{deployment_id}/challengers", json=body)
        return result

    def remove_challenger(self, deployment_id: str, model_package_id: str) -> dict[str, Any]:
        path = f"{API}/deployments/{deployment_id}/challengers/{model_package_id}"
        result: dict[str, Any] = self._json("DELETE", path)
        return result

    def promote_challenger(
        self,
        deployment_id: str,
        model_package_id: str,
        reason: str | None = None,
        note: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        body = {"force": force, **self._without_none(reason=reason, note=note)}
        path = f"{API}/deployments/{deployment_id}/challengers/{model_package_id}/promote"
        result: dict[str, Any] = self._json("POST", path, json=body)
        return result

    def list_revisions(self, deployment_id: str) -> list[dict[str, Any]]:
        """Every model the deployment has run, newest (the current one) first."""
        result: list[dict[str, Any]] = self._json("GET", f"{API}/deployments/{deployment_id}/revisions")
        return result

    def rollback(
        self,
        deployment_id: str,
        revision: int | None = None,
        reason: str | None = None,
        note: str | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Return to `revision`'s package (default: the revision before the current one);
        answers `{"changed", "message", "revision", "deploymentId"}`."""
        body = {"force": force, **self._without_none(revision=revision, reason=reason, note=note)}
        result: dict[str, Any] = self._json("POST", f"{API}/deployments/{deployment_id}/rollback", json=body)
        return result

    def update_deployment(
        self,
        deployment_id: str,
        description: str | None = None,
        key_value_config: dict[str, Any] | None = None,
        association_id: dict[str, Any] | None = None,
        challenger_copy_percent: float | None = None,
    ) -> dict[str, Any]:
        body = self._without_none(
            description=description, keyValueConfig=key_value_config, associationId=association_id,
            challengerCopyPercent=challenger_copy_percent,
        )  # fmt: skip
        result: dict[str, Any] = self._json("PATCH", f"{API}/deployments/{deployment_id}", json=body)
        return result

    def delete_deployment(self, deployment_id: str) -> None:
        self._json("DELETE", f"{API}/deployments/{deployment_id}")

    # -- events ------------------------------------------------------------------------------

    def list_events(
        self,
        environment_id: str | None = None,
        deployment_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(
            "GET",
            f"{API}/events",
            params=self._without_none(environmentId=environment_id, deploymentId=deployment_id, limit=limit),
        )
        return result

    # -- tokens ------------------------------------------------------------------------------

    def create_token(self, name: str, role: str, environment_ids: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "role": role}
        if environment_ids:
            body["environmentIds"] = environment_ids
        result: dict[str, Any] = self._json("POST", f"{API}/tokens", json=body)
        return result

    def list_tokens(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", f"{API}/tokens")
        return result

    def delete_token(self, id_or_name: str) -> None:
        self._json("DELETE", f"{API}/tokens/{id_or_name}")

    # -- the management agent's calls ---------------------------------------------------------

    def desired_state(self, env_id: str, revision: int | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Long poll: returns when the revision differs from `revision` or after `timeout`."""
        path, options = self._desired_state_request(env_id, revision, timeout)
        result: dict[str, Any] = self._json("GET", path, **options)
        return result

    def _desired_state_request(self, env_id: str, revision: int | None, timeout: float) -> tuple[str, dict[str, Any]]:
        params = self._without_none(revision=revision, timeout=timeout if revision is not None else None)
        return f"{API}/agent/environments/{env_id}/desired-state", {
            "params": params,
            "timeout": httpx.Timeout(self._timeout, read=timeout + self._timeout),
        }

    def desired_state_poller(self) -> DesiredStatePoller:
        """The same long poll, awaitable and abortable (see DesiredStatePoller)."""
        return DesiredStatePoller(self)

    def report_status(self, env_id: str, payload: dict[str, Any]) -> None:
        self._json("POST", f"{API}/agent/environments/{env_id}/status", json=payload)

    def post_events(self, env_id: str, events: list[dict[str, Any]]) -> None:
        if events:
            self._json("POST", f"{API}/agent/environments/{env_id}/events", json={"events": events})

    # -- monitoring ----------------------------------------------------------------------------

    def post_monitoring_batch(self, batch_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Send aggregates (or raw records); resending the same batch id is a no-op."""
        import orjson

        result: dict[str, Any] = self._json(
            "POST",
            f"{API}/monitoring/batches",
            content=orjson.dumps({"batchId": batch_id, "records": records}),
            headers={"Content-Type": "application/json"},
        )
        return result

    # -- notifications (docs/notifications.md) ------------------------------------------
    def create_notification_channel(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"{API}/notification-channels", json=body)
        return result

    def list_notification_channels(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", f"{API}/notification-channels")
        return result

    def test_notification_channel(self, ref: str) -> dict[str, Any]:
        """Send a test message now: the delivery, sent or with the reason it was not."""
        result: dict[str, Any] = self._json("POST", f"{API}/notification-channels/{ref}/test")
        return result

    def create_notification_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._json("POST", f"{API}/notification-policies", json=body)
        return result

    def list_notification_policies(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", f"{API}/notification-policies")
        return result

    def notification_deliveries(
        self, channel: str | None = None, policy: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(
            "GET",
            f"{API}/notification-deliveries",
            params=self._without_none(channel=channel, policy=policy, state=state, limit=limit),
        )
        return result

    def upload_actuals(self, deployment_id: str, body: bytes, content_type: str = "text/csv") -> dict[str, Any]:
        """One request of actuals (CSV or JSON, docs/accuracy.md): the server's account of it."""
        result: dict[str, Any] = self._json(
            "POST", f"{API}/deployments/{deployment_id}/actuals", content=body, headers={"Content-Type": content_type}
        )
        return result

    def accuracy(
        self,
        deployment_id: str,
        start: str | None = None,
        end: str | None = None,
        bucket_seconds: int = 3600,
        model_id: str | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "GET",
            f"{API}/deployments/{deployment_id}/accuracy",
            params=self._without_none(start=start, end=end, bucketSeconds=bucket_seconds, modelId=model_id),
        )
        return result

    def service_health(
        self, deployment_id: str, start: str | None = None, end: str | None = None, bucket_seconds: int = 60
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "GET",
            f"{API}/deployments/{deployment_id}/monitoring/service-health",
            params=self._without_none(start=start, end=end, bucketSeconds=bucket_seconds),
        )
        return result

    def prediction_distribution(
        self, deployment_id: str, start: str | None = None, end: str | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "GET",
            f"{API}/deployments/{deployment_id}/monitoring/predictions",
            params=self._without_none(start=start, end=end),
        )
        return result

    def model_monitoring(self, deployment_id: str, start: str | None = None, end: str | None = None) -> dict[str, Any]:
        """Each model's health in the window and its prediction PSI against the champion."""
        result: dict[str, Any] = self._json(
            "GET",
            f"{API}/deployments/{deployment_id}/monitoring/models",
            params=self._without_none(start=start, end=end),
        )
        return result

    def feature_drift(self, deployment_id: str, start: str | None = None, end: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "GET",
            f"{API}/deployments/{deployment_id}/monitoring/drift",
            params=self._without_none(start=start, end=end),
        )
        return result


class DesiredStatePoller:
    """`desired_state` on an asyncio HTTP client of its own, for the agent. Cancelling the
    awaiting task closes the connection at once; the blocking call in a worker thread could
    not be interrupted, so a stopping agent (and the interpreter, which joins worker threads
    at exit) waited for the long poll to time out, up to a minute."""

    def __init__(self, client: ControlPlaneClient) -> None:
        self._client = client
        self._http: httpx.AsyncClient | None = None

    async def desired_state(self, env_id: str, revision: int | None = None, timeout: float = 30.0) -> dict[str, Any]:
        if self._http is None:
            sync = self._client._http
            self._http = httpx.AsyncClient(base_url=sync.base_url, headers=sync.headers, timeout=sync.timeout)
        path, options = self._client._desired_state_request(env_id, revision, timeout)
        try:
            response = await self._http.request("GET", path, **options)
        except httpx.TransportError as exc:
            raise _transport_error(self._client.base_url, "GET", path, exc) from exc
        if response.status_code >= 400:
            raise ControlPlaneError(response.status_code, _error_message(response))
        result: dict[str, Any] = response.json()
        return result

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

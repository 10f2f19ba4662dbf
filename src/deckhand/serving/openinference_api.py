"""The Open Inference Protocol's (KServe v2 / Triton REST) routes on the public listener.

    GET  /v2                                    server metadata
    GET  /v2/health/live, /v2/health/ready      liveness; readiness (as /ping)
    GET  /v2/models/<name>[/versions/<v>]       model metadata
    GET  /v2/models/<name>[/versions/<v>]/ready 200 when the model is loaded, else 503
    POST /v2/models/<name>[/versions/<v>]/infer inference (bodies: `openinference`)

`<name>` is a deployment reference, as in `/deployments/<id>`; on a single-model server
the model's name and model id name it too. `<v>` is the model id the deployment serves
(another version is a 404). Errors are `{"error": "..."}`. Inference goes through the
data plane as `/predictions` does: the same body and row limits, the micro-batcher, and
the same metrics and monitoring record, and on a mix the same routing (`DataPlane.predict_mix`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import deckhand
from deckhand.packages import ModelInputError
from deckhand.serving import codecs, openinference
from deckhand.serving.config import ServeConfig
from deckhand.serving.dataplane import DataPlane, OperationError, UnknownDeployment
from deckhand.serving.http import JSON, HttpError, header, json_body, send_response
from deckhand.serving.repository import DeploymentEntry, ServingModel
from deckhand.serving.routing import ERROR_STATUS, Handler, Request, Route

log = logging.getLogger("deckhand.serving")

BINARY = b"application/octet-stream"
MODEL = "/v2/models/{id}"
MODEL_VERSION = "/v2/models/{id}/versions/{version}"
SERVER_METADATA = {"name": "deckhand", "version": deckhand.__version__, "extensions": ["binary_tensor_data"]}


def _v2_errors(handler: Handler) -> Handler:
    """Answer the handler's errors in the protocol's form, `{"error": message}`."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> None:
        try:
            await handler(request)
        except HttpError as exc:
            await send_response(request.send, exc.status, openinference.error_body(exc.message), headers=exc.headers)
        except OperationError as exc:
            await send_response(request.send, ERROR_STATUS.get(type(exc), 500), openinference.error_body(str(exc)))

    return wrapped


class OpenInferenceApi:
    """The v2 handlers over a data plane; `read_body` reads a request body within the
    server's --max-body-mb (the public listener's own reader)."""

    def __init__(self, config: ServeConfig, plane: DataPlane, read_body: Callable[[Request], Awaitable[bytes]]) -> None:
        self.config = config
        self.plane = plane
        self.read_body = read_body

    def routes(self) -> list[Route]:
        routes = [
            Route("GET", "/v2", self.server_metadata),
            Route("GET", "/v2/health/live", self.live),
            Route("GET", "/v2/health/ready", self.ready),
        ]
        for prefix in (MODEL, MODEL_VERSION):
            routes += [
                Route("GET", prefix, self.model_metadata),
                Route("GET", f"{prefix}/ready", self.model_ready),
                Route("POST", f"{prefix}/infer", self.infer),
            ]
        return [Route(r.method, r.pattern, _v2_errors(r.handler)) for r in routes]

    # -- the model a path names -------------------------------------------------------------
    def _entry(self, name: str) -> DeploymentEntry:
        try:
            return self.plane.deployment(name)
        except UnknownDeployment:
            if self.config.multi_model:
                raise
        entry = self.plane.deployment(self.config.deployment_id)
        current = entry.current
        if current is not None and name in (current.manifest.name, current.model_id):
            return entry
        served = f" (model {current.manifest.name!r}, version {current.model_id!r})" if current else ""
        raise UnknownDeployment(f"no model {name!r}; this server serves {self.config.deployment_id!r}{served}")

    def _model(self, request: Request) -> tuple[DeploymentEntry, ServingModel]:
        name = request.params["id"]
        entry = self._entry(name)
        serving = self.plane.loaded_model(entry, name)
        version = request.params.get("version")
        if version is not None and version != serving.model_id:
            raise HttpError(404, f"model {name!r} has no version {version!r}; it serves version {serving.model_id!r}")
        return entry, serving

    # -- server and model metadata ---------------------------------------------------------
    async def server_metadata(self, request: Request) -> None:
        await send_response(request.send, 200, json_body(SERVER_METADATA))

    async def live(self, request: Request) -> None:
        await send_response(request.send, 200, json_body({"live": True}))

    async def ready(self, request: Request) -> None:
        ready = self.plane.ready()
        await send_response(request.send, 200 if ready else 503, json_body({"ready": ready}))

    async def model_metadata(self, request: Request) -> None:
        _, serving = self._model(request)
        body = openinference.model_metadata(request.params["id"], serving.model_id, serving.manifest)
        await send_response(request.send, 200, json_body(body))

    async def model_ready(self, request: Request) -> None:
        self._model(request)  # unknown: 404; not loaded: 503 (ModelNotLoaded)
        await send_response(request.send, 200, json_body({"name": request.params["id"], "ready": True}))

    # -- inference ---------------------------------------------------------------------------
    async def infer(self, request: Request) -> None:
        plane, scope = self.plane, request.scope
        entry, serving = self._model(request)
        answered = serving if serving.mix is None else serving.mix.champion  # the model that answers
        encoding = header(scope, b"content-encoding")
        if encoding not in ("", "identity"):
            raise HttpError(415, f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
        body = await self.read_body(request)
        started = time.perf_counter()
        rows, error = 0, None
        batch: codecs.Batch | None = None
        chosen: Any = []
        headers: list[tuple[bytes, bytes]] = []  # besides the answering model's id
        try:
            decoded = await self._run(
                len(body),
                openinference.decode_request,
                body,
                header(scope, openinference.HEADER_LENGTH.encode()),
                serving.manifest,
                self.config.max_rows,
            )
            batch, rows = decoded.batch, len(decoded.batch)
            if serving.mix is None:
                predictions, chosen = await plane.predict(serving, batch)
            else:
                answered, (predictions, chosen) = await plane.predict_mix(
                    entry, serving, batch, scope["headers"], False
                )
            payload, json_length = await self._run(
                len(body),
                openinference.encode_response,
                decoded,
                predictions,
                chosen,
                answered.manifest,
                request.params["id"],
                answered.model_id,
            )
            status, ctype = 200, JSON if json_length is None else BINARY
            if json_length is not None:
                headers.append((openinference.HEADER_LENGTH.encode(), str(json_length).encode()))
        except codecs.RequestError as exc:
            status, ctype, error, payload = exc.status, JSON, "user", openinference.error_body(str(exc))
        except ModelInputError as exc:
            status, ctype, error = 400, JSON, "user"
            payload = openinference.error_body(f"the model rejected the input: {exc}")
        except Exception as exc:
            log.exception("event=prediction_failed deployment=%s protocol=v2", entry.key)
            status, ctype, error = 500, JSON, "system"
            payload = openinference.error_body(f"inference failed: {type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        await send_response(
            request.send, status, payload, ctype, [*answered.headers, *headers] if headers else answered.headers
        )
        plane.record(entry, answered, batch, chosen, rows, seconds, status, error)
        if serving.mix is not None and error is None:
            plane.shadow_copy(entry, serving, answered, batch, chosen)

    async def _run(self, body_size: int, function: Callable[..., Any], *args: Any) -> Any:
        """Decode or encode on the event loop for small bodies, in a worker thread for large."""
        if body_size <= codecs.LARGE_BODY:
            return function(*args)
        return await self.plane.offload(function, *args)

"""The prediction server's public listener: HTTP over the operations in `dataplane`.

    GET  /                                a greeting
    GET  /ping                            liveness (503 until the model loads, single mode)
    GET  /metrics                         Prometheus text format
    POST /predictions | /predict          single-model mode
    GET  /info                            single-model mode
    GET  /deployments                     every deployment and its state
    GET  /deployments/<id>                (also /deployments/<id>/info)
    POST /deployments/<id>/predictions    (also /predict)
    /v2/...                               the Open Inference Protocol (`openinference_api`)

Uploads and deletes are not served here: they are the admin listener's (`admin`). Requests
of more than `stream_chunk_rows` rows are scored in chunks and answered as a stream, so
memory stays a small multiple of the body. `<id>` is the deployment's directory name, or
its config.yml deployment_id when only one directory has it. Every prediction response
names the model that answered in `x-deckhand-model-id` (in a mix: the champion or the canary).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from deckhand.packages import ModelInputError
from deckhand.serving import association, codecs
from deckhand.serving.config import ServeConfig
from deckhand.serving.dataplane import DataPlane, Scored, predicted
from deckhand.serving.http import JSON, body_chunks, header, json_body, send_response
from deckhand.serving.openinference_api import OpenInferenceApi
from deckhand.serving.repository import ServingModel
from deckhand.serving.routing import Request, Route, RouteTable

log = logging.getLogger("deckhand.serving")

MODEL_CHANGES = "model changes go through the agent, or the admin listener (deckhand serve --admin-port, with a token)"


class PublicApp:
    """ASGI handler for requests that arrived on the public socket."""

    def __init__(self, config: ServeConfig, plane: DataPlane) -> None:
        self.config = config
        self.plane = plane
        self.routes = RouteTable(
            [
                Route("GET", "/", self.root),
                Route("GET", "/ping", self.ping),
                Route("GET", "/metrics", self.metrics),
                Route("POST", "/predictions", self.predict_single),
                Route("POST", "/predict", self.predict_single),
                Route("GET", "/info", self.info_single),
                Route("GET", "/deployments", self.deployments),
                Route("GET", "/deployments/{id}", self.info),
                Route("GET", "/deployments/{id}/info", self.info),
                Route("POST", "/deployments/{id}/predictions", self.predict),
                Route("POST", "/deployments/{id}/predict", self.predict),
                *OpenInferenceApi(config, plane, self._body).routes(),
            ],
            listener="public",
            not_found_hint="see GET /deployments",
            not_allowed_hints={"/deployments/{id}": MODEL_CHANGES},
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.routes(scope, receive, send)

    # -- the routes ---------------------------------------------------------------------
    async def root(self, request: Request) -> None:
        await send_response(request.send, 200, json_body({"message": "deckhand prediction server"}))

    async def ping(self, request: Request) -> None:
        if self.plane.ready():
            await send_response(request.send, 200, json_body({"message": "OK"}))
        else:
            await send_response(request.send, 503, json_body({"message": "model not loaded"}))

    async def metrics(self, request: Request) -> None:
        body = self.plane.metrics_text()
        await send_response(request.send, 200, body, self.plane.metrics.content_type.encode())

    async def deployments(self, request: Request) -> None:
        await send_response(request.send, 200, json_body({"data": self.plane.deployments()}))

    async def info(self, request: Request) -> None:
        await send_response(request.send, 200, json_body(self.plane.info(request.params["id"])))

    async def info_single(self, request: Request) -> None:
        await send_response(request.send, 200, json_body(self.plane.info(self.config.deployment_id)))

    async def predict(self, request: Request) -> None:
        await self._predict(request, request.params["id"])

    async def predict_single(self, request: Request) -> None:
        await self._predict(request, self.config.deployment_id)

    # -- predictions ----------------------------------------------------------------------
    async def _predict(self, request: Request, ref: str) -> None:
        plane, scope, send = self.plane, request.scope, request.send
        entry = plane.deployment(ref)
        body = await self._body(request)
        started = time.perf_counter()
        serving = plane.loaded_model(entry, ref)
        answered = serving if serving.mix is None else serving.mix.champion  # the model that answers
        manifest = serving.manifest
        rows = 0
        error: str | None = None
        batch = None
        chosen: Any = []
        payload = b""
        ids: list[str] | None = None  # the rows' association ids, when the deployment gives them
        scored: Any = None
        try:
            batch = await plane.decode(body, header(scope, b"content-type"), manifest)
            rows = len(batch)
            settings = serving.mix.association if serving.mix is not None else None
            if settings:
                ids = association.request_ids(body, header(scope, b"content-type"), settings, rows)
            chunked = rows > self.config.stream_chunk_rows
            if serving.mix is not None:
                answered, scored = await plane.predict_mix(entry, serving, batch, scope["headers"], chunked)
            elif chunked:
                scored = await plane.predict_in_chunks(serving, batch)
            else:
                scored = await plane.predict(serving, batch)
            manifest = answered.manifest
            if chunked:
                status, chosen = 200, await self._send_streamed(request, answered, scored, ids)
            else:
                predictions, chosen = scored
                if codecs.wants_csv(header(scope, b"accept")):
                    payload = codecs.encode_csv(predictions, manifest, chosen, association_ids=ids)
                    status, ctype = 200, b"text/csv"
                else:
                    status, payload, ctype = 200, codecs.encode_json(predictions, manifest, chosen, ids), JSON
        except codecs.RequestError as exc:
            status, payload, ctype, error = exc.status, json_body({"message": str(exc)}), JSON, "user"
        except ModelInputError as exc:
            status, error, ctype = 422, "user", JSON
            payload = json_body({"message": f"the model rejected the input: {exc}"})
        except Exception as exc:
            log.exception("event=prediction_failed deployment=%s", entry.key)
            status, error, ctype = 500, "system", JSON
            payload = json_body({"message": f"prediction failed: {type(exc).__name__}: {exc}"})
        seconds = time.perf_counter() - started
        if payload:
            await send_response(send, status, payload, ctype, answered.headers)
        plane.record(entry, answered, batch, chosen, rows, seconds, status, error)
        if ids is not None and error is None:
            plane.record_scored(entry, answered, ids, scored)
        if serving.mix is not None and error is None:
            plane.shadow_copy(entry, serving, answered, batch, chosen, ids)

    async def _body(self, request: Request) -> bytes:
        limit, flag = self.config.max_body_bytes, "--max-body-mb; split the rows"
        chunks = [chunk async for chunk in body_chunks(request.scope, request.receive, limit, flag)]
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _send_streamed(
        self, request: Request, answered: ServingModel, scored: list[Scored], ids: list[str] | None = None
    ) -> Any:
        """Answer a large request, scored in chunks (`predict_in_chunks`), as a stream of encoded
        chunks: no per-row objects for the whole request exist at once. Everything was scored
        before the 200 is sent, so a bad row is still a clean 4xx. Returns what monitoring
        counts: the predicted labels, or an array of the predicted values."""
        plane, send, manifest = self.plane, request.send, answered.manifest
        as_csv = codecs.wants_csv(header(request.scope, b"accept"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                # no length: chunked
                "headers": [(b"content-type", b"text/csv" if as_csv else JSON), *answered.headers],
            }
        )
        first_row = 0
        for index, (predictions, labels) in enumerate(scored):
            chunk_ids = None if ids is None else ids[first_row : first_row + len(predictions)]
            if as_csv:
                part = await plane.offload(
                    codecs.encode_csv, predictions, manifest, labels, first_row, index == 0, chunk_ids
                )
            else:
                rows = await plane.offload(codecs.encode_json_rows, predictions, manifest, labels, first_row, chunk_ids)
                part = (codecs.JSON_OPEN if index == 0 else b",") + rows
            await send({"type": "http.response.body", "body": part, "more_body": True})
            first_row += len(predictions)
        await send({"type": "http.response.body", "body": b"" if as_csv else codecs.JSON_CLOSE})
        return predicted(scored, manifest)

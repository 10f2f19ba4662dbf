"""The prediction server as a lean ASGI application (routing + HTTP glue only).

Routes (both modes; single-model mode is a repository holding one deployment):
    GET  /ping                            liveness (503 until the model loads, single mode)
    GET  /metrics                         Prometheus text format
    POST /predictions | /predict          single-model mode
    GET  /info                            single-model mode
    GET  /deployments                     every deployment and its state
    POST /deployments/<id>/predictions    (also /predict)
    GET  /deployments/<id>/info           (also GET /deployments/<id>)

Uploads and deletes are not served here: they are the admin listener's (`admin`), a
second socket that exists only with `--admin-port` and a token. Requests of more than
`stream_chunk_rows` rows are scored in chunks and answered as a stream, so memory stays a
small multiple of the body; bodies are decoded off the event loop once they are large.

`<id>` is the deployment's directory name, or its config.yml deployment_id when only one
directory has it. Codecs live in `codecs`, models in `repository`; this file wires them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from deckhand.packages import LoadedModel, Manifest, ModelInputError, PackageError, Predictions
from deckhand.serving import codecs
from deckhand.serving.admin import AdminApp
from deckhand.serving.config import ServeConfig
from deckhand.serving.http import JSON, HttpError, Scope, body_chunks, header, json_body, send_response
from deckhand.serving.metrics import ServerMetrics
from deckhand.serving.observers import (
    PredictionObserver,
    PredictionRecord,
    RecordObserver,
    as_observer,
    observer_from_spec,
)
from deckhand.serving.repository import BatchingConfig, DeploymentEntry, ModelRepository, ServingModel
from deckhand.serving.tally import RequestTally
from deckhand.serving.watcher import ModelsDirWatcher

log = logging.getLogger("deckhand.serving")


class PredictionServer:
    """ASGI callable: `uvicorn.run(PredictionServer(...))`. Build it with `create_app`."""

    def __init__(
        self,
        config: ServeConfig,
        repository: ModelRepository,
        *,
        observer: PredictionObserver | RecordObserver | None = None,
        watcher: ModelsDirWatcher | None = None,
    ) -> None:
        self.config = config
        self.repository = repository
        self.observer = as_observer(observer)
        # feature samples: at most this many requests a second (None: every request)
        rate = self.observer.feature_samples_per_second if self.observer is not None else None
        self._sample_interval = 1.0 / rate if rate else 0.0
        self._next_sample_at = 0.0
        self.watcher = watcher
        self.metrics = ServerMetrics()
        # each request is counted once, for /metrics and for an observer that takes the
        # server's tallies; a per-request observer gets a PredictionRecord each
        self._takes_tallies = self.observer is not None and not self.observer.per_request
        self.tally = RequestTally(count_predictions=self._takes_tallies)
        self.tally.add_sink(self.metrics.absorb)
        if self._takes_tallies:
            self.tally.add_sink(self.observer.count_tallies)  # type: ignore[union-attr]
            self.observer.add_source(self.tally.drain)  # type: ignore[union-attr]
        self.admin = AdminApp(self) if config.admin_port is not None else None
        self.started = False

    # -- ASGI entry ---------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.admin is not None and (scope.get("server") or (None, None))[1] == self.config.admin_port:
                await self.admin(scope, receive, send)
            else:
                await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Load what is there before serving, then watch for changes."""
        if self.watcher is not None and not self.started:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: self.watcher.poll_once(wait=True))  # type: ignore[union-attr]
            self.watcher.start()
            if not self.repository.keys():
                threading.Thread(target=_warm_up_imports, name="deckhand-warm-up", daemon=True).start()
        self.started = True

    def shutdown(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.observer is not None:
            self.observer.close(timeout=2.0)

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        method = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        try:
            if method == "POST" and path in ("/predictions", "/predict"):
                await self._predict(scope, receive, send, self.config.deployment_id)
            elif path.startswith("/deployments"):
                await self._deployments(scope, receive, send, method, path)
            elif method == "GET" and path == "/ping":
                await self._ping(send)
            elif method == "GET" and path == "/info":
                await send_response(send, 200, json_body(self.entry(self.config.deployment_id).info()))
            elif method == "GET" and path == "/metrics":
                self.tally.drain()
                body = self.metrics.render(
                    sum(1 for e in self.repository.entries() if e.current is not None),
                    self.repository.load_failures,
                )
                await send_response(send, 200, body, self.metrics.content_type.encode())
            elif method == "GET" and path == "/":
                await send_response(send, 200, json_body({"message": "deckhand prediction server"}))
            else:
                raise HttpError(404, f"no route {method} {path}; see GET /deployments")
        except HttpError as exc:
            await send_response(send, exc.status, json_body({"message": exc.message}), headers=exc.headers)

    async def _deployments(self, scope: Scope, receive: Any, send: Any, method: str, path: str) -> None:
        parts = path.split("/")[2:]  # "", "deployments", ...
        if not parts:
            if method != "GET":
                raise HttpError(405, f"{method} /deployments is not allowed; use GET")
            body = {"data": [e.info() for e in self.repository.entries()]}
            await send_response(send, 200, json_body(body))
            return
        ref = parts[0]
        action = parts[1] if len(parts) > 1 else ""
        if len(parts) > 2:
            raise HttpError(404, f"no route {method} {path}")
        if method == "POST" and action in ("predictions", "predict"):
            await self._predict(scope, receive, send, ref)
        elif method == "GET" and action in ("info", ""):
            await send_response(send, 200, json_body(self.entry(ref).info()))
        elif action == "":
            raise HttpError(
                405,
                f"{method} /deployments/<id> is not served on the public listener: model changes go through "
                "the agent, or the admin listener (deckhand serve --admin-port, with a token)",
                headers=[(b"allow", b"GET")],
            )
        else:
            raise HttpError(404, f"no route {method} {path}")

    async def _ping(self, send: Any) -> None:
        if not self.config.multi_model:
            entry = self.repository.resolve(self.config.deployment_id)
            if entry is None or entry.current is None:
                await send_response(send, 503, json_body({"message": "model not loaded"}))
                return
        await send_response(send, 200, json_body({"message": "OK"}))

    def entry(self, ref: str) -> DeploymentEntry:
        entry = self.repository.resolve(ref)
        if entry is None:
            raise HttpError(
                404,
                f"no deployment {ref!r}; known: {sorted(self.repository.keys())[:20]} "
                "(use the directory name or its deployment_id)",
            )
        return entry

    async def _body(self, scope: Scope, receive: Any) -> bytes:
        limit, flag = self.config.max_body_bytes, "--max-body-mb; split the rows"
        chunks = [chunk async for chunk in body_chunks(scope, receive, limit, flag)]
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- predictions ----------------------------------------------------------------------
    async def _decode(self, body: bytes, content_type: str, manifest: Manifest) -> codecs.Batch:
        if len(body) <= codecs.LARGE_BODY:
            return codecs.decode(body, content_type, manifest, self.config.max_rows)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.repository.executor, codecs.decode, body, content_type, manifest, self.config.max_rows
        )

    async def _predict(self, scope: Scope, receive: Any, send: Any, ref: str) -> None:
        entry = self.entry(ref)
        body = await self._body(scope, receive)
        started = time.perf_counter()
        serving = entry.current
        if serving is None:
            raise HttpError(
                503,
                f"deployment {ref!r} has no model loaded (state {entry.state}"
                + (f", last error: {entry.last_error}" if entry.last_error else "")
                + ")",
            )
        manifest = serving.manifest
        rows = 0
        error: str | None = None
        batch = None
        chosen: Any = []
        payload = b""
        try:
            batch = await self._decode(body, header(scope, b"content-type"), manifest)
            rows = len(batch)
            if rows > self.config.stream_chunk_rows:
                status, chosen = 200, await self._predict_streamed(scope, send, serving, batch)
            else:
                predictions = await serving.batcher.predict(batch)
                chosen = codecs.prediction_labels(predictions, manifest)  # computed once: response and monitoring
                if codecs.wants_csv(header(scope, b"accept")):
                    status, payload, ctype = 200, codecs.encode_csv(predictions, manifest, chosen), b"text/csv"
                else:
                    status, payload, ctype = 200, codecs.encode_json(predictions, manifest, chosen), JSON
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
            await send_response(send, status, payload, ctype)
        now = time.time()
        self.tally.observe(entry.key, entry.deployment_id, serving.model_id, now, status, rows, seconds, error, chosen)
        if self._takes_tallies:
            if now >= self._next_sample_at:  # most requests: no call at all
                self._report_features(entry, serving, batch, now)
        elif self.observer is not None:
            labels = chosen.tolist() if isinstance(chosen, np.ndarray) else chosen
            self._report(entry, serving, batch, labels, rows, seconds, status, error)

    async def _predict_streamed(self, scope: Scope, send: Any, serving: ServingModel, batch: codecs.Batch) -> Any:
        """Score a large request in chunks in a worker thread, then answer it as a stream of
        encoded chunks: no per-row objects for the whole request exist at once. Everything is
        scored before the 200 is sent, so a bad row is still a clean 4xx. Returns what
        monitoring counts: the predicted labels, or an array of the predicted values."""
        loop = asyncio.get_running_loop()
        executor = self.repository.executor
        manifest = serving.manifest
        scored = await loop.run_in_executor(
            executor, _score_in_chunks, serving.model, batch, self.config.stream_chunk_rows
        )
        as_csv = codecs.wants_csv(header(scope, b"accept"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/csv" if as_csv else JSON)],  # no length: chunked
            }
        )
        first_row = 0
        for index, (predictions, labels) in enumerate(scored):
            if as_csv:
                part = await loop.run_in_executor(
                    executor, codecs.encode_csv, predictions, manifest, labels, first_row, index == 0
                )
            else:
                rows = await loop.run_in_executor(
                    executor, codecs.encode_json_rows, predictions, manifest, labels, first_row
                )
                part = (codecs.JSON_OPEN if index == 0 else b",") + rows
            await send({"type": "http.response.body", "body": part, "more_body": True})
            first_row += len(predictions)
        await send({"type": "http.response.body", "body": b"" if as_csv else codecs.JSON_CLOSE})
        if manifest.class_labels:
            return [label for _, labels in scored for label in labels]
        return np.concatenate([predictions.values for predictions, _ in scored])  # type: ignore[misc]

    def _feature_sample(self, batch: Any, now: float) -> list[dict[str, Any]] | None:
        """The first rows of this request's input, taken at most `feature_samples_per_second`
        times a second (evenly spaced: one request every 1/rate seconds)."""
        if now < self._next_sample_at or batch is None or not self.config.feature_sample_rows:
            return None
        self._next_sample_at = now + self._sample_interval
        try:
            return batch.head_records(self.config.feature_sample_rows) or None
        except Exception as exc:  # monitoring must never fail a request
            log.warning("event=monitoring_sample_failed error=%r", exc)
            return None

    def _report_features(self, entry: DeploymentEntry, serving: Any, batch: Any, now: float) -> None:
        sample = self._feature_sample(batch, now)
        if sample:
            try:
                self.observer.report_features(entry.deployment_id, serving.model_id, sample, now)  # type: ignore[union-attr]
            except Exception as exc:  # monitoring must never fail a request
                log.warning("event=monitoring_sample_failed error=%r", exc)

    def _report(
        self,
        entry: DeploymentEntry,
        serving: Any,
        batch: Any,
        chosen: list[Any],
        rows: int,
        seconds: float,
        status: int,
        error: str | None,
    ) -> None:
        """Hand this request's PredictionRecord to an observer that does not take tallies."""
        try:
            now = time.time()
            sample = self._feature_sample(batch, now)
            self.observer.submit(  # type: ignore[union-attr]
                PredictionRecord(
                    entry.deployment_id,
                    serving.model_id,
                    rows,
                    seconds * 1000.0,
                    status,
                    error,  # type: ignore[arg-type]
                    chosen,
                    sample or [],
                    serving.manifest.class_labels,
                    now,
                )
            )
        except Exception as exc:  # monitoring must never fail a request
            log.warning("event=monitoring_record_failed error=%r", exc)


def _score_in_chunks(model: LoadedModel, batch: codecs.Batch, size: int) -> list[tuple[Predictions, list[Any]]]:
    """Predictions and their labels, `size` rows at a time (a worker thread)."""
    manifest = model.manifest
    scored = []
    for start in range(0, len(batch), size):
        predictions = model.predict(batch.slice(start, start + size))
        scored.append((predictions, codecs.prediction_labels(predictions, manifest)))
    return scored


def _warm_up_imports() -> None:
    """Import what loading a scikit-learn package needs. A models-dir server usually starts
    empty and gets its first deployment moments later (the agent starts it, then deploys);
    doing these imports now makes that first load take milliseconds instead of seconds."""
    try:
        import joblib  # noqa: F401
        import sklearn.linear_model  # noqa: F401

        from deckhand.packages.formats import sklearn_format  # noqa: F401
    except Exception as exc:  # only an optimisation
        log.debug("event=warm_up_failed error=%r", exc)


def create_app(config: ServeConfig, observer: PredictionObserver | RecordObserver | None = None) -> PredictionServer:
    """Build the server. An unknown monitoring spec raises MonitoringConfigError here."""
    if observer is None:
        observer = observer_from_spec(config.monitoring_spec())
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="deckhand-predict")
    repository = ModelRepository(
        BatchingConfig(
            enabled=config.batching,
            max_rows=config.max_batch_rows,
            max_wait_s=config.batch_wait_ms / 1000.0,
            inline_max_rows=config.inline_max_rows,
        ),
        executor=executor,
        package_limits=config.package_limits,
    )
    watcher = None
    if config.models_dir is not None:
        config.models_dir.mkdir(parents=True, exist_ok=True)
        watcher = ModelsDirWatcher(
            repository,
            config.models_dir,
            prefix=config.deployment_dir_prefix,
            info_file=config.info_file,
            interval=config.poll_interval_s,
        )
    else:
        assert config.package is not None
        entry = repository.entry(config.deployment_id, config.deployment_id)
        if not repository.load_into(entry, config.package, config.model_id):
            raise PackageError(entry.last_error or f"{config.package}: cannot load the model")
    return PredictionServer(config, repository, observer=observer, watcher=watcher)


def app_from_env() -> PredictionServer:
    """uvicorn factory for worker processes: the config comes as JSON in the environment."""
    import os

    from deckhand.serving.config import CONFIG_ENV

    return create_app(ServeConfig.model_validate_json(os.environ[CONFIG_ENV]))

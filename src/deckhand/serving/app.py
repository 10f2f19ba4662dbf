"""The prediction server as a lean ASGI application (routing + HTTP glue only).

Routes (both modes; single-model mode is a repository holding one deployment):
    GET  /ping                            liveness (503 until the model loads, single mode)
    GET  /metrics                         Prometheus text format
    POST /predictions | /predict          single-model mode
    GET  /info                            single-model mode
    GET  /deployments                     every deployment and its state
    POST /deployments/<id>/predictions    (also /predict)
    GET  /deployments/<id>/info           (also GET /deployments/<id>)
    POST /deployments/<id>                upload a package (multi-model mode)
    DELETE /deployments/<id>              remove a deployment (multi-model mode)

`<id>` is the deployment's directory name, or its config.yml deployment_id when only one
directory has it. Codecs live in `codecs`, models in `repository`; this file wires them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson

from deckhand.packages import ModelInputError, PackageError, read_manifest
from deckhand.serving import codecs
from deckhand.serving.config import ServeConfig
from deckhand.serving.hooks import (
    BackgroundReporter,
    PredictionRecord,
    Reporter,
    background,
    reporter_from_spec,
)
from deckhand.serving.metrics import ServerMetrics
from deckhand.serving.repository import BatchingConfig, DeploymentEntry, ModelRepository
from deckhand.serving.tally import RequestTally
from deckhand.serving.watcher import ModelsDirWatcher

log = logging.getLogger("deckhand.serving")

JSON = b"application/json"
Scope = dict[str, Any]


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


async def _send(send: Any, status: int, body: bytes, content_type: bytes = JSON) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


class PredictionServer:
    """ASGI callable: `uvicorn.run(PredictionServer(...))`. Build it with `create_app`."""

    def __init__(
        self,
        config: ServeConfig,
        repository: ModelRepository,
        *,
        reporter: Reporter | None = None,
        watcher: ModelsDirWatcher | None = None,
    ) -> None:
        self.config = config
        self.repository = repository
        self.reporter: BackgroundReporter | None = background(reporter)
        # feature samples: at most this many requests a second (reporters that do not say: all)
        rate = getattr(self.reporter, "feature_samples_per_second", None)
        self._sample_interval = 1.0 / rate if rate else 0.0
        self._next_sample_at = 0.0
        self.watcher = watcher
        self.metrics = ServerMetrics()
        # each request is counted once, for /metrics and for a reporter that takes the
        # server's tallies (hooks.TallyReporter); other reporters get a PredictionRecord each
        self._takes_tallies = hasattr(self.reporter, "count_tallies")
        self.tally = RequestTally(count_predictions=self._takes_tallies)
        self.tally.add_sink(self.metrics.absorb)
        if self._takes_tallies:
            self.tally.add_sink(self.reporter.count_tallies)  # type: ignore[union-attr]
            self.reporter.add_source(self.tally.drain)  # type: ignore[union-attr]
        self.started = False

    # -- ASGI entry ---------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
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
        if self.reporter is not None:
            self.reporter.close(timeout=2.0)

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
                await _send(send, 200, _json(self._entry(self.config.deployment_id).info()))
            elif method == "GET" and path == "/metrics":
                self.tally.drain()
                body = self.metrics.render(
                    sum(1 for e in self.repository.entries() if e.current is not None),
                    self.repository.load_failures,
                )
                await _send(send, 200, body, self.metrics.content_type.encode())
            elif method == "GET" and path == "/":
                await _send(send, 200, _json({"message": "deckhand prediction server"}))
            else:
                raise HttpError(404, f"no route {method} {path}; see GET /deployments")
        except HttpError as exc:
            await _send(send, exc.status, _json({"message": exc.message}))

    async def _deployments(self, scope: Scope, receive: Any, send: Any, method: str, path: str) -> None:
        parts = path.split("/")[2:]  # "", "deployments", ...
        if not parts:
            if method != "GET":
                raise HttpError(405, f"{method} /deployments is not allowed; use GET")
            body = {"data": [e.info() for e in self.repository.entries()]}
            await _send(send, 200, _json(body))
            return
        ref = parts[0]
        action = parts[1] if len(parts) > 1 else ""
        if len(parts) > 2:
            raise HttpError(404, f"no route {method} {path}")
        if method == "POST" and action in ("predictions", "predict"):
            await self._predict(scope, receive, send, ref)
        elif method == "GET" and action in ("info", ""):
            await _send(send, 200, _json(self._entry(ref).info()))
        elif method == "POST" and action == "":
            await self._upload(scope, receive, send, ref)
        elif method == "DELETE" and action == "":
            await self._delete(send, ref)
        else:
            raise HttpError(404, f"no route {method} {path}")

    async def _ping(self, send: Any) -> None:
        if not self.config.multi_model:
            entry = self.repository.resolve(self.config.deployment_id)
            if entry is None or entry.current is None:
                await _send(send, 503, _json({"message": "model not loaded"}))
                return
        await _send(send, 200, _json({"message": "OK"}))

    def _entry(self, ref: str) -> DeploymentEntry:
        entry = self.repository.resolve(ref)
        if entry is None:
            raise HttpError(
                404,
                f"no deployment {ref!r}; known: {sorted(self.repository.keys())[:20]} "
                "(use the directory name or its deployment_id)",
            )
        return entry

    async def _body(self, scope: Scope, receive: Any) -> bytes:
        limit = self.config.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            raise HttpError(413, f"the body has {declared} bytes, over the limit of {limit}; split the rows")
        chunks = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(499, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"the body is over the limit of {limit} bytes; split the rows")
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- predictions ----------------------------------------------------------------------
    async def _predict(self, scope: Scope, receive: Any, send: Any, ref: str) -> None:
        entry = self._entry(ref)
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
        chosen: list[Any] = []
        try:
            batch = codecs.decode(body, _header(scope, b"content-type"), manifest)
            rows = len(batch)
            predictions = await serving.batcher.predict(batch)
            chosen = codecs.prediction_labels(predictions, manifest)  # computed once: response and monitoring
            if codecs.wants_csv(_header(scope, b"accept")):
                status, payload, ctype = 200, codecs.encode_csv(predictions, manifest, chosen), b"text/csv"
            else:
                status, payload, ctype = 200, codecs.encode_json(predictions, manifest, chosen), JSON
        except codecs.RequestError as exc:
            status, payload, ctype, error = exc.status, _json({"message": str(exc)}), JSON, "user"
        except ModelInputError as exc:
            status, error, ctype = 422, "user", JSON
            payload = _json({"message": f"the model rejected the input: {exc}"})
        except Exception as exc:
            log.exception("event=prediction_failed deployment=%s", entry.key)
            status, error, ctype = 500, "system", JSON
            payload = _json({"message": f"prediction failed: {type(exc).__name__}: {exc}"})
        seconds = time.perf_counter() - started
        await _send(send, status, payload, ctype)
        now = time.time()
        self.tally.observe(entry.key, entry.deployment_id, serving.model_id, now, status, rows, seconds, error, chosen)
        if self._takes_tallies:
            if now >= self._next_sample_at:  # most requests: no call at all
                self._report_features(entry, serving, batch, now)
        elif self.reporter is not None:
            self._report(entry, serving, batch, chosen, rows, seconds, status, error)

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
                self.reporter.report_features(entry.deployment_id, serving.model_id, sample, now)  # type: ignore[union-attr]
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
        """Hand this request's PredictionRecord to a reporter that does not take tallies."""
        try:
            now = time.time()
            sample = self._feature_sample(batch, now)
            self.reporter.submit(  # type: ignore[union-attr]
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

    # -- upload / delete (multi-model) ---------------------------------------------------
    def _models_dir(self) -> Path:
        if self.config.models_dir is None or self.watcher is None:
            raise HttpError(405, "uploads and deletes need multi-model mode (deckhand serve --models-dir)")
        return self.config.models_dir

    def _dir_name(self, ref: str) -> str:
        entry = self.repository.resolve(ref)
        if entry is not None:
            return entry.key
        prefix = self.config.deployment_dir_prefix
        return ref if ref.startswith(prefix) else f"{prefix}{ref}"

    async def _upload(self, scope: Scope, receive: Any, send: Any, ref: str) -> None:
        from deckhand.plugins.filesystem import layout

        models_dir = self._models_dir()
        body = await self._body(scope, receive)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        name = self._dir_name(ref)
        deployment_id = query.get("deploymentId", [name.removeprefix(self.config.deployment_dir_prefix)])[0]
        loop = asyncio.get_running_loop()

        def install() -> tuple[bool, dict[str, Any]]:
            staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=models_dir))
            try:
                package = staging / f"model-{secrets.token_hex(4)}.dhpkg"
                package.write_bytes(body)
                manifest = read_manifest(package)
                model_id = query.get("modelId", [manifest.name])[0]
                layout.check_dir_name(name)
                layout.install(models_dir, name, deployment_id, model_id, package)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            ok = self.watcher.sync_dir(name)  # type: ignore[union-attr]
            entry = self.repository.resolve(name)
            return ok, entry.info() if entry else {}

        try:
            ok, info = await loop.run_in_executor(None, install)
        except (PackageError, layout.LayoutError) as exc:
            raise HttpError(422, str(exc)) from exc
        await _send(send, 201 if ok else 422, _json(info))

    async def _delete(self, send: Any, ref: str) -> None:
        from deckhand.plugins.filesystem import layout

        models_dir = self._models_dir()
        entry = self._entry(ref)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, layout.remove, models_dir, entry.key)
        self.repository.remove(entry.key)
        await _send(send, 200, _json({"message": f"deployment {entry.key} removed"}))


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


def create_app(config: ServeConfig, reporter: Reporter | None = None) -> PredictionServer:
    """Build the server. An unknown monitoring spec raises MonitoringConfigError here."""
    if reporter is None:
        reporter = reporter_from_spec(config.monitoring_spec())
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="deckhand-predict")
    repository = ModelRepository(
        BatchingConfig(
            enabled=config.batching,
            max_rows=config.max_batch_rows,
            max_wait_s=config.batch_wait_ms / 1000.0,
            inline_max_rows=config.inline_max_rows,
        ),
        executor=executor,
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
    return PredictionServer(config, repository, reporter=reporter, watcher=watcher)


def app_from_env() -> PredictionServer:
    """uvicorn factory for worker processes: the config comes as JSON in the environment."""
    import os

    from deckhand.serving.config import CONFIG_ENV

    return create_app(ServeConfig.model_validate_json(os.environ[CONFIG_ENV]))

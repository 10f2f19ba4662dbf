"""The prediction server as a lean raw-ASGI application: this file only wires the parts.

Models live in a `ModelRepository` (`repository`), kept in step with a models directory by
the `watcher` in multi-model mode (single-model mode is a repository holding one
deployment). The operations (predict, info, list, health, metrics) are plain methods of a
`DataPlane` (`dataplane`); each listener is a thin HTTP adapter over them with its own
route table (`routing`): the public one (`public`: predictions, info, /ping, /metrics)
and, only with `--admin-port` and a token, the admin one (`admin`: uploads and deletes),
on a second socket told apart by its port. Codecs live in `codecs`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deckhand.packages import PackageError
from deckhand.serving.admin import AdminApp
from deckhand.serving.config import ServeConfig
from deckhand.serving.dataplane import DataPlane
from deckhand.serving.http import Scope
from deckhand.serving.observers import PredictionObserver, RecordObserver, as_observer, observer_from_spec
from deckhand.serving.public import PublicApp
from deckhand.serving.repository import BatchingConfig, ModelRepository
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
        self.watcher = watcher
        self.plane = DataPlane(config, repository, self.observer)
        self.public = PublicApp(config, self.plane)
        self.admin = AdminApp(config, self.plane, watcher) if config.admin_port is not None else None
        self.started = False

    # -- ASGI entry ---------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.admin is not None and (scope.get("server") or (None, None))[1] == self.config.admin_port:
                await self.admin(scope, receive, send)
            else:
                await self.public(scope, receive, send)
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
        # What is loaded by now (the interpreter, libraries, the first models) lives as long as
        # the server: out of the collector's sight, a full collection no longer walks it, which
        # took milliseconds out of an unlucky request (the p99 of 1-row requests).
        gc.freeze()
        self.started = True

    def shutdown(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.plane.close()
        if self.observer is not None:
            self.observer.close(timeout=2.0)


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

"""What the prediction server does, free of any protocol (like KServe's `DataPlane`).

Plain methods over the model repository: list deployments, read one's info, tell whether
the server is ready, render metrics, decode a body, score a batch, and count what a
request did (metrics, tallies, monitoring records and feature samples). They take parsed
inputs and return results or raise typed errors (`UnknownDeployment`, `ModelNotLoaded`,
`codecs.RequestError`, `ModelInputError`); the listeners (`public`, `admin`) turn HTTP
into these calls and the errors into statuses (`routing.ERROR_STATUS`).

A deployment serving a mix (`mixes`) is scored by `predict_mix`: the member the request
routes to answers, a canary that fails is covered by the champion, and challengers get a
copy through the `shadow` scorer once the response is sent (`shadow_copy`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from deckhand.packages import LoadedModel, Manifest, ModelInputError, Predictions
from deckhand.serving import codecs
from deckhand.serving.config import ServeConfig
from deckhand.serving.metrics import ServerMetrics
from deckhand.serving.observers import PredictionObserver, PredictionRecord
from deckhand.serving.repository import DeploymentEntry, ModelRepository, ServingModel
from deckhand.serving.shadow import ShadowScorer
from deckhand.serving.tally import RequestTally, Tally

log = logging.getLogger("deckhand.serving")

T = TypeVar("T")
Scored = tuple[Predictions, Any]  # predictions and their labels (a list, or an array of values)


class OperationError(Exception):
    """An operation could not be done; the message says why and what to do."""


class UnknownDeployment(OperationError):
    """No deployment answers to the reference given."""


class ModelNotLoaded(OperationError):
    """The deployment exists but has no model to score with (yet, or any more)."""


class _UnderWay:
    """How many of something are under way: `with under_way:` around each (a class, not
    contextlib.contextmanager, because it wraps every prediction)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> None:
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        self.count -= 1


class DataPlane:
    """The prediction server's operations over one model repository."""

    def __init__(
        self, config: ServeConfig, repository: ModelRepository, observer: PredictionObserver | None = None
    ) -> None:
        self.config = config
        self.repository = repository
        self.observer = observer
        # feature samples: at most this many requests a second (None: every request)
        rate = observer.feature_samples_per_second if observer is not None else None
        self._sample_interval = 1.0 / rate if rate else 0.0
        self._next_sample_at = 0.0
        self.metrics = ServerMetrics()
        # each request is counted once, for /metrics and for an observer that takes the
        # server's tallies; a per-request observer gets a PredictionRecord each
        self._takes_tallies = observer is not None and not observer.per_request
        self.tally = RequestTally(count_predictions=self._takes_tallies)
        self.tally.add_sink(self.metrics.absorb)
        if self._takes_tallies:
            self.tally.add_sink(observer.count_tallies)  # type: ignore[union-attr]
            observer.add_source(self.tally.drain)  # type: ignore[union-attr]
        # challengers' copies: a scorer process, started with the first copy; with
        # shadow_copies "idle", none while other requests wait for a model (`scoring`)
        self.scoring = _UnderWay()
        self.shadow = ShadowScorer(self._shadow_scored, repository.package_limits, on_rows=self._shadow_rows)

    # -- deployments ----------------------------------------------------------------------
    def deployment(self, ref: str) -> DeploymentEntry:
        """The deployment `ref` names: its directory name, or a deployment_id only it has."""
        entry = self.repository.resolve(ref)
        if entry is None:
            raise UnknownDeployment(
                f"no deployment {ref!r}; known: {sorted(self.repository.keys())[:20]} "
                "(use the directory name or its deployment_id)"
            )
        return entry

    def loaded_model(self, entry: DeploymentEntry, ref: str) -> ServingModel:
        """The model `entry` serves now (`ref` is how the caller named it, for the message)."""
        serving = entry.current
        if serving is None:
            raise ModelNotLoaded(
                f"deployment {ref!r} has no model loaded (state {entry.state}"
                + (f", last error: {entry.last_error}" if entry.last_error else "")
                + ")"
            )
        return serving

    def info(self, ref: str) -> dict[str, Any]:
        return self._info(self.deployment(ref))

    def deployments(self) -> list[dict[str, Any]]:
        return [self._info(entry) for entry in self.repository.entries()]

    def _info(self, entry: DeploymentEntry) -> dict[str, Any]:
        body = entry.info()
        if "mix" in body:  # what the challengers got: copies sent, scored, dropped
            body["mix"]["shadow"] = self.shadow.counts(entry.key)
        return body

    def close(self) -> None:
        self.shadow.close()

    def ready(self) -> bool:
        """Single-model mode: the model is loaded. Multi-model mode: always (an empty
        models directory is a working server)."""
        if self.config.multi_model:
            return True
        entry = self.repository.resolve(self.config.deployment_id)
        return entry is not None and entry.current is not None

    def metrics_text(self) -> bytes:
        """Prometheus text format (`self.metrics.content_type`), tallies drained first."""
        self.tally.drain()
        loaded = sum(1 for e in self.repository.entries() if e.current is not None)
        return self.metrics.render(loaded, self.repository.load_failures)

    # -- predictions ------------------------------------------------------------------------
    async def offload(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function(*args)` in the prediction worker threads, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.repository.executor, function, *args)

    async def decode(self, body: bytes, content_type: str, manifest: Manifest) -> codecs.Batch:
        """The body as a batch of rows (raises codecs.RequestError); large bodies are
        decoded off the event loop."""
        if len(body) <= codecs.LARGE_BODY:
            return codecs.decode(body, content_type, manifest, self.config.max_rows)
        return await self.offload(codecs.decode, body, content_type, manifest, self.config.max_rows)

    async def predict(self, serving: ServingModel, batch: codecs.Batch) -> Scored:
        """Score a batch through the model's micro-batcher (raises ModelInputError for
        input the model cannot take). Labels are computed once: response and monitoring."""
        with self.scoring:
            predictions = await serving.batcher.predict(batch)
        return predictions, codecs.prediction_labels(predictions, serving.manifest)

    async def predict_in_chunks(self, serving: ServingModel, batch: codecs.Batch) -> list[Scored]:
        """Score a large batch `stream_chunk_rows` rows at a time in a worker thread."""
        with self.scoring:
            return await self.offload(_score_in_chunks, serving.model, batch, self.config.stream_chunk_rows)

    async def predict_mix(
        self, entry: DeploymentEntry, serving: ServingModel, batch: codecs.Batch, headers: Any, chunked: bool
    ) -> tuple[ServingModel, Any]:
        """Score a batch with the mix member the request routes to: (the member that answered,
        what `predict` or `predict_in_chunks` returns). When the canary fails, the champion
        scores the batch and answers; the canary's failure is counted for it as a shadow record."""
        mix = serving.mix
        assert mix is not None
        member = mix.route(headers, batch)
        score = self.predict_in_chunks if chunked else self.predict
        if member is mix.champion:
            return member, await score(member, batch)
        started = time.perf_counter()
        try:
            return member, await score(member, batch)
        except Exception as exc:  # any failure of the canary: the champion answers instead
            seconds = time.perf_counter() - started
            user = isinstance(exc, ModelInputError)
            log.warning(
                "event=canary_failed deployment=%s model_id=%s answered_by=%s error=%r",
                entry.key,
                member.model_id,
                mix.champion.model_id,
                exc,
            )
        self.record_shadow(
            entry.key,
            entry.deployment_id,
            member.model_id or "",
            time.time(),
            422 if user else 500,
            len(batch),
            seconds,
            "user" if user else "system",
            [],
            None,
            member.manifest.class_labels,
        )
        return mix.champion, await score(mix.champion, batch)

    def shadow_copy(
        self,
        entry: DeploymentEntry,
        serving: ServingModel,
        answered: ServingModel,
        batch: Any,
        chosen: Any,
        ids: list[str] | None = None,
    ) -> None:
        """After the response: a copy for the challengers of a request the champion answered
        (their answers are compared with the champion's), if it falls within the copy share.
        Shed, and counted, while other requests wait for a model (shadow_copies "idle"): the
        copy's work would come out of theirs on a busy server, and challengers must never slow
        the champion."""
        mix = serving.mix
        if mix is None or not mix.challengers or answered is not mix.champion or batch is None:
            return
        if not mix.takes_copy():  # outside the deployment's copy share
            self.shadow.pass_over(entry.key)
            return
        if self.scoring.count and self.config.shadow_copies == "idle":
            self.shadow.shed(entry.key)
            return
        try:
            self.shadow.submit(entry.key, entry.deployment_id, mix.shadow_targets, batch, chosen, ids)
        except Exception as exc:  # a copy must never fail a request
            log.warning("event=shadow_copy_failed deployment=%s error=%r", entry.key, exc)

    def _shadow_rows(self, found: list[Any]) -> None:
        """Challengers' answers by association id (the scorer's results thread), for accuracy."""
        report = getattr(self.observer, "report_scored", None)
        if report is None:
            return
        for deployment_id, model_id, ids, values, class_names, timestamp in found:
            try:
                report(deployment_id, model_id, ids, values, class_names, timestamp)
            except Exception as exc:  # monitoring must never fail a request
                log.warning("event=monitoring_scored_failed error=%r", exc)

    def _shadow_scored(self, tallies: list[Tally]) -> None:
        """The scorer's tallies of what the challengers scored (its results thread). A
        per-request observer gets one record per tally: the challenger's rows of the copies
        scored since the last tallies, their median latency and their worst status."""
        self.tally.absorb(tallies)
        if self.observer is None or self._takes_tallies:
            return
        for t in tallies:
            predictions = list(t.predictions) or [v for a in t.value_arrays for v in a.tolist()]
            latency_ms = float(np.median(t.latencies)) * 1000.0 if t.latencies else 0.0
            error = "system" if t.system_errors else "user" if t.user_errors else None
            try:
                self.observer.submit(
                    PredictionRecord(
                        t.deployment_id, t.model_id, t.rows, latency_ms, max(t.statuses, default=200), error,  # type: ignore[arg-type]
                        predictions, [], None, float(t.minute), True, t.compared_rows, t.agreed_rows, t.abs_diff_sum,
                    )
                )  # fmt: skip
            except Exception as exc:  # monitoring must never fail a request
                log.warning("event=monitoring_record_failed error=%r", exc)

    def record_shadow(
        self,
        key: str,
        deployment_id: str,
        model_id: str,
        now: float,
        status: int,
        rows: int,
        seconds: float,
        error: str | None,
        predictions: Any,
        comparison: tuple[int, int, float] | None,
        class_names: list[str] | None,
    ) -> None:
        """Count what a model scored without answering (a challenger, a failed canary)."""
        self.tally.observe(
            key, deployment_id, model_id, now, status, rows, seconds, error, predictions, True, comparison
        )
        if self.observer is None or self._takes_tallies:
            return
        compared, agreed, abs_diff = comparison or (0, 0, 0.0)
        labels = predictions.tolist() if isinstance(predictions, np.ndarray) else list(predictions)
        try:
            self.observer.submit(
                PredictionRecord(
                    deployment_id, model_id, rows, seconds * 1000.0, status, error, labels, [], class_names, now,  # type: ignore[arg-type]
                    True, compared, agreed, abs_diff,
                )
            )  # fmt: skip
        except Exception as exc:  # monitoring must never fail a request
            log.warning("event=monitoring_record_failed error=%r", exc)

    def record(
        self,
        entry: DeploymentEntry,
        serving: ServingModel,
        batch: codecs.Batch | None,
        chosen: Any,
        rows: int,
        seconds: float,
        status: int,
        error: str | None,
    ) -> None:
        """Count one prediction request: metrics and tallies, and monitoring when it is on.
        `chosen` is what was predicted (labels, or an array of values); `error` is None,
        "user" or "system"."""
        now = time.time()
        self.tally.observe(entry.key, entry.deployment_id, serving.model_id, now, status, rows, seconds, error, chosen)
        if self._takes_tallies:
            if now >= self._next_sample_at:  # most requests: no call at all
                self._report_features(entry, serving, batch, now)
        elif self.observer is not None:
            labels = chosen.tolist() if isinstance(chosen, np.ndarray) else chosen
            self._report(entry, serving, batch, labels, rows, seconds, status, error)

    def record_scored(self, entry: DeploymentEntry, serving: ServingModel, ids: list[str], scored: Any) -> None:
        """Report each row's prediction under its association id (docs/accuracy.md), for an
        observer that takes them (`report_scored`); `scored` is what predict returned (a list
        of chunks for a chunked request)."""
        report = getattr(self.observer, "report_scored", None)
        if report is None:
            return
        try:
            chunks = scored if isinstance(scored, list) else [scored]
            labels = serving.manifest.class_labels
            if labels and all(p.probabilities is not None for p, _ in chunks):
                values: list[Any] = [row for p, _ in chunks for row in p.probabilities.tolist()]  # type: ignore[union-attr]
            elif labels:
                values = [label for _, chosen in chunks for label in chosen]
            else:
                values = [v for p, _ in chunks for v in np.asarray(p.values, dtype=float).tolist()]
            report(entry.deployment_id, serving.model_id, ids, values, list(labels) if labels else None, time.time())
        except Exception as exc:  # monitoring must never fail a request
            log.warning("event=monitoring_scored_failed error=%r", exc)

    # -- monitoring ---------------------------------------------------------------------------
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


def _score_in_chunks(model: LoadedModel, batch: codecs.Batch, size: int) -> list[Scored]:
    """Predictions and their labels, `size` rows at a time (a worker thread)."""
    manifest = model.manifest
    scored = []
    for start in range(0, len(batch), size):
        predictions = model.predict(batch.slice(start, start + size))
        scored.append((predictions, codecs.prediction_labels(predictions, manifest)))
    return scored


def predicted(scored: list[Scored], manifest: Manifest) -> Any:
    """What monitoring counts of a request scored in chunks: the predicted labels, or an
    array of the predicted values."""
    if manifest.class_labels:
        return [label for _, labels in scored for label in labels]
    return np.concatenate([predictions.values for predictions, _ in scored])  # type: ignore[misc]

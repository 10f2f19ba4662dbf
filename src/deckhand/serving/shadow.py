"""Challengers: score copies of answered requests in a scorer process, never in the way.

After the champion's response is sent, the server hands the decoded batch and the champion's
answers to `ShadowScorer.submit`: a non-blocking put on a bounded queue (a full queue drops
the copy and counts it; nothing is queued without bound). One scorer process per server
worker, started on the first copy at nice +10 (a fresh interpreter, one BLAS thread) and fed
over a socket pair by a sender thread that pickles the copies. The scorer loads each challenger's
package itself (from the extracted path; kept loaded), scores the copy, compares its answers
with the champion's and sends back one `ShadowResult` per challenger. A process rather than
a thread: a thread would compete for the GIL with the request path, and the nice value puts
its CPU time behind the server's.

A thread of the server collects the results and hands them to `on_scored` (the data
plane counts them as shadow tallies: docs/rollouts.md). A scorer that dies is started again
with the next copy; a scorer whose server dies sees its socket close and exits.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from deckhand.package_limits import PackageLimits

log = logging.getLogger("deckhand.serving.shadow")

MAX_QUEUE = 64  # copies waiting for the scorer; more are dropped
MAX_ROWS = 10_000  # larger requests are not copied (counted as dropped)
NICE = 10
REGRESSION_TOLERANCE = 0.01  # regression answers agree within 1 % of each other
_CACHED_MODELS = 16  # challenger models the scorer keeps loaded


@dataclass(frozen=True)
class ShadowCopy:
    """What crosses to the scorer process (pickled by the queue's feeder thread)."""

    key: str
    deployment_id: str
    challengers: tuple[tuple[str, str], ...]  # (model id, extracted package path)
    batch: Any  # deckhand.packages.Batch
    champion: Any  # the champion's labels, or its values (list or array)
    timestamp: float


@dataclass(frozen=True)
class ShadowResult:
    """One challenger's scoring of one copy."""

    model_id: str
    rows: int
    seconds: float
    status: int
    error: str | None  # None, "user" or "system"
    predictions: Any  # labels (list), or values (array)
    class_names: list[str] | None
    compared: int
    agreed: int
    abs_diff_sum: float


@dataclass
class ShadowCounts:
    sent: int = 0
    scored: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "scored": self.scored, "dropped": self.dropped}


OnScored = Callable[[ShadowCopy, list[ShadowResult]], None]


class ShadowScorer:
    """The server side: the bounded queue, the scorer process, and a thread each to send copies
    and to collect results."""

    def __init__(
        self,
        on_scored: OnScored,
        limits: PackageLimits | None = None,
        *,
        max_queue: int = MAX_QUEUE,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self.on_scored = on_scored
        self.limits = limits or PackageLimits()
        self.max_queue = max_queue
        self.max_rows = max_rows
        self._counts: dict[str, ShadowCounts] = {}
        self._queue: queue.Queue[ShadowCopy | None] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def counts(self, key: str) -> dict[str, int]:
        return self._counts.get(key, ShadowCounts()).as_dict()

    def submit(
        self, key: str, deployment_id: str, challengers: tuple[tuple[str, str], ...], batch: Any, champion: Any
    ) -> None:
        """Queue a copy for the challengers, or drop it (counted) when the queue is full."""
        counts = self._counts.get(key) or self._counts.setdefault(key, ShadowCounts())
        if len(batch) > self.max_rows or self._closed:
            counts.dropped += 1
            return
        jobs = self._queue or self._start()
        try:
            jobs.put_nowait(ShadowCopy(key, deployment_id, challengers, batch, champion, time.time()))
        except queue.Full:
            counts.dropped += 1
            if counts.dropped == 1 or counts.dropped % 1000 == 0:
                log.warning("event=shadow_queue_full deployment=%s dropped=%d", key, counts.dropped)
            return
        counts.sent += 1

    def _start(self) -> queue.Queue[ShadowCopy | None]:
        """Start the scorer: `python -c` rather than multiprocessing, which would run the
        server's own __main__ again in the child (`python -m deckhand.cli serve`)."""
        with self._lock:
            if self._queue is not None:
                return self._queue
            ours, theirs = socket.socketpair()
            env = dict(os.environ, **ONE_THREAD)
            # the same deckhand as this server, whatever the child's sys.path would be
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SOURCE_ROOT, env.get("PYTHONPATH")]))
            limits = json.dumps(dataclasses.asdict(self.limits))
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(theirs.fileno()), limits],
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
            )
            theirs.close()
            connection = Connection(ours.detach())
            jobs: queue.Queue[ShadowCopy | None] = queue.Queue(maxsize=self.max_queue)
            threading.Thread(
                target=self._send, args=(jobs, connection), name="deckhand-shadow-send", daemon=True
            ).start()
            threading.Thread(
                target=self._collect, args=(connection,), name="deckhand-shadow-results", daemon=True
            ).start()
            self._queue = jobs
            log.info("event=shadow_scorer_started pid=%s", self._process.pid)
            return jobs

    def _send(self, jobs: queue.Queue[ShadowCopy | None], connection: Connection) -> None:
        while True:
            copy = jobs.get()
            try:
                connection.send(copy)  # pickled here, in this thread
            except (OSError, ValueError) as exc:  # the scorer is gone; _collect restarts it
                log.warning("event=shadow_send_failed error=%r", exc)
                return
            if copy is None:
                return

    def _collect(self, connection: Connection) -> None:
        while True:
            try:
                copy, results = connection.recv()
            except (EOFError, OSError) as exc:
                log.info("event=shadow_results_closed error=%r", exc)
                break
            counts = self._counts.get(copy.key)
            if counts is not None:
                counts.scored += 1
            try:
                self.on_scored(copy, results)
            except Exception:  # counting must not stop the thread
                log.exception("event=shadow_result_failed deployment=%s", copy.key)
        connection.close()
        if not self._closed:
            exit_code = self._process.poll() if self._process is not None else None
            log.warning("event=shadow_scorer_died exitcode=%s restarting=true", exit_code)
            self._queue = None  # the next copy starts a new scorer

    def close(self, timeout: float = 2.0) -> None:
        self._closed = True
        jobs, process = self._queue, self._process
        if jobs is None or process is None:
            return
        try:
            jobs.put(None, timeout=timeout)
        except queue.Full:
            pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


# -- the scorer process ----------------------------------------------------------------------
_CHILD = "import sys; from deckhand.serving.shadow import scorer_main; scorer_main(int(sys.argv[1]), sys.argv[2])"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


def scorer_main(fd: int, limits_json: str) -> None:
    """Score copies from the connection on `fd` until told to stop (None) or the server is gone."""
    try:
        os.nice(NICE)
    except OSError:
        pass
    limits = PackageLimits(**json.loads(limits_json))
    connection = Connection(fd)
    models: OrderedDict[str, Any] = OrderedDict()
    while True:
        try:
            copy = connection.recv()
        except (EOFError, OSError):  # the server process is gone
            return
        if copy is None:
            return
        out = [_score(models, model_id, path, copy, limits) for model_id, path in copy.challengers]
        # the batch and the champion's answers need not travel back
        connection.send((ShadowCopy(copy.key, copy.deployment_id, (), None, None, copy.timestamp), out))


def _model(models: OrderedDict[str, Any], path: str, limits: PackageLimits) -> Any:
    from deckhand.packages import load_model

    model = models.get(path)
    if model is None:
        model = models[path] = load_model(Path(path), limits)
        while len(models) > _CACHED_MODELS:
            models.popitem(last=False)[1].close()
    else:
        models.move_to_end(path)
    return model


def _score(
    models: OrderedDict[str, Any], model_id: str, path: str, copy: ShadowCopy, limits: PackageLimits
) -> ShadowResult:
    from deckhand.packages import ModelInputError
    from deckhand.serving.codecs import prediction_labels

    rows = len(copy.batch)
    class_names = None
    started = time.perf_counter()
    try:
        model = _model(models, path, limits)
        started = time.perf_counter()  # the latency of scoring, not of the first load
        manifest = model.manifest
        class_names = manifest.class_labels
        predictions = model.predict(copy.batch)
        regression = not manifest.class_labels
        answers: Any = predictions.values if regression else prediction_labels(predictions, manifest)
        seconds = time.perf_counter() - started
    except ModelInputError:
        return ShadowResult(model_id, rows, time.perf_counter() - started, 422, "user", [], class_names, 0, 0, 0.0)
    except Exception as exc:
        log.warning("event=challenger_failed model_id=%s error=%r", model_id, exc)
        return ShadowResult(model_id, rows, time.perf_counter() - started, 500, "system", [], class_names, 0, 0, 0.0)
    compared, agreed, abs_diff = compare(copy.champion, answers, regression)
    return ShadowResult(model_id, rows, seconds, 200, None, answers, class_names, compared, agreed, abs_diff)


def compare(champion: Any, challenger: Any, regression: bool) -> tuple[int, int, float]:
    """(rows compared, rows that agree, sum of |difference|): labels agree when equal,
    regression values when within REGRESSION_TOLERANCE of the larger magnitude."""
    n = min(len(champion), len(challenger))
    if not n:
        return 0, 0, 0.0
    if regression:
        a = np.asarray(champion[:n], dtype=float)
        b = np.asarray(challenger[:n], dtype=float)
        diff = np.abs(a - b)
        agreed = np.count_nonzero(diff <= REGRESSION_TOLERANCE * np.maximum(np.abs(a), np.abs(b)))
        return n, int(agreed), float(diff.sum())
    return n, sum(1 for x, y in zip(champion[:n], challenger[:n], strict=True) if x == y), 0.0

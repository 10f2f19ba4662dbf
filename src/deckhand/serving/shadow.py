"""Challengers: score copies of answered requests in a scorer process, never in the way.

After the champion's response is sent, the server hands the decoded batch and the champion's
answers to `ShadowScorer.submit`: a non-blocking put on a bounded queue (a full queue drops
the copy and counts it; nothing is queued without bound). One scorer process per server
worker, started on the first copy at nice +10 (a fresh interpreter, one BLAS thread), is fed
over a datagram socket pair whose kernel buffer is that bounded queue: the request path
sends to it without blocking, and no thread wakes per copy. The scorer loads each
challenger's package itself (from the extracted path; kept loaded), scores the copies
waiting together (one `predict()` per challenger), compares its answers with the
champion's and counts them into its own shadow tallies (`deckhand.serving.tally`); then
it rests, at least MIN_REST_S and so that it is busy at most DUTY of the time (the copies
gather meanwhile: one wake-up and one `predict()` per challenger for many copies). A
process rather than a thread: a thread would compete for the GIL with the request path,
and the nice value and SCHED_IDLE put its CPU time behind the server's.

Every RESULTS_EVERY_S the scorer sends its tallies -- a few objects per challenger and
minute, however many copies they count -- and a thread of the server hands them to
`on_scored` (the data plane adds them to its own tally: docs/rollouts.md). Results sent
copy by copy cost the server more than the copies did: unpickling thousands of them holds
the GIL for milliseconds, and the request path waits. A scorer that dies is started again
with the next copy; a scorer whose server dies sees its socket close and exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import pickle
import select
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from deckhand.package_limits import PackageLimits
from deckhand.serving.tally import RequestTally, Tally

log = logging.getLogger("deckhand.serving.shadow")

QUEUE_BYTES = 4 * 1024**2  # copies waiting for the scorer (the kernel may cap it lower); more are dropped
MAX_COPY_BYTES = 8 * 1024**2  # a copy larger than the socket buffer is dropped anyway
MAX_ROWS = 10_000  # larger requests are not copied (counted as dropped)
RESULTS_EVERY_S = 0.2  # the scorer sends results batched
MAX_BATCH_ROWS = 4096  # copies scored in one predict() per challenger
DUTY = 0.25  # the scorer's busy share of time at most: it rests 3x as long as it scored
MIN_REST_S = 0.025  # and at least this long: copies gather, and it wakes 40 times a second, not per copy
FULL_BACKOFF_S = 0.005  # after a full buffer, copies are dropped without trying for this long
NICE = 10
REGRESSION_TOLERANCE = 0.01  # regression answers agree within 1 % of each other
_CACHED_MODELS = 16  # challenger models the scorer keeps loaded


@dataclass(frozen=True)
class ShadowCopy:
    """What crosses to the scorer process: one datagram, pickled in the request path."""

    key: str
    deployment_id: str
    challengers: tuple[tuple[str, str], ...]  # (model id, extracted package path)
    batch: Any  # deckhand.packages.Batch
    champion: Any  # the champion's labels, or its values (list or array)
    timestamp: float
    ids: list[str] | None = None  # the rows' association ids, when the deployment gives them


# A challenger's answers by association id, for accuracy (docs/accuracy.md): deployment id,
# model id, ids, per-row answers (values, or probability lists in class order), classes, time.
ScoredRows = tuple[str, str, list[str], list[Any], list[str] | None, float]


@dataclass(frozen=True)
class ShadowResult:
    """One challenger's scoring of `copies` copies in one call (their rows summed)."""

    model_id: str
    rows: int
    seconds: float
    status: int
    error: str | None  # None, "user" or "system"
    predictions: Any  # labels (list), or values (array)
    compared: int
    agreed: int
    abs_diff_sum: float
    copies: int = 1
    rows_by_id: ScoredRows | None = None  # only for copies with association ids


@dataclass
class ShadowCounts:
    sent: int = 0
    scored: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "scored": self.scored, "dropped": self.dropped}


OnScored = Callable[[list[Tally]], None]  # the scorer's shadow tallies, every RESULTS_EVERY_S
OnRows = Callable[[list[ScoredRows]], None]  # challengers' answers by association id


class ShadowScorer:
    """The server side: the copies' socket (the bounded queue), the scorer process, and a
    thread that collects results."""

    def __init__(
        self,
        on_scored: OnScored,
        limits: PackageLimits | None = None,
        *,
        queue_bytes: int = QUEUE_BYTES,
        max_rows: int = MAX_ROWS,
        on_rows: OnRows | None = None,
    ) -> None:
        self.on_scored = on_scored
        self.on_rows = on_rows
        self.limits = limits or PackageLimits()
        self.queue_bytes = queue_bytes
        self.max_rows = max_rows
        self._counts: dict[str, ShadowCounts] = {}
        self._copies: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._full_until = 0.0

    def counts(self, key: str) -> dict[str, int]:
        return self._counts.get(key, ShadowCounts()).as_dict()

    def submit(
        self,
        key: str,
        deployment_id: str,
        challengers: tuple[tuple[str, str], ...],
        batch: Any,
        champion: Any,
        ids: list[str] | None = None,
    ) -> None:
        """Send a copy to the scorer, or drop it (counted) when the socket's buffer is full."""
        counts = self._counts.get(key) or self._counts.setdefault(key, ShadowCounts())
        if len(batch) > self.max_rows or self._closed:
            counts.dropped += 1
            return
        if self._full_until and time.monotonic() < self._full_until:  # full a moment ago: not even pickled
            counts.dropped += 1
            return
        copies = self._copies or self._start()
        data = _pack(ShadowCopy(key, deployment_id, challengers, batch, champion, time.time(), ids))
        try:
            copies.send(data)  # one datagram, whole or not at all; never blocks
        except (BlockingIOError, OSError) as exc:  # full (or, EMSGSIZE, a copy larger than the buffer)
            counts.dropped += 1
            if isinstance(exc, BlockingIOError):
                self._full_until = time.monotonic() + FULL_BACKOFF_S
            if not isinstance(exc, BlockingIOError | InterruptedError) and exc.errno != errno.EMSGSIZE:
                self._copies = None  # the scorer is gone: the next copy starts another
            elif counts.dropped == 1 or counts.dropped % 1000 == 0:
                log.warning("event=shadow_queue_full deployment=%s dropped=%d", key, counts.dropped)
            return
        counts.sent += 1

    def _start(self) -> socket.socket:
        """Start the scorer: `python -c` rather than multiprocessing, which would run the
        server's own __main__ again in the child (`python -m deckhand.cli serve`). Copies go
        over a datagram socket pair sent to without blocking, straight from the request path
        (no thread to wake per copy); results come back batched over a stream pair."""
        with self._lock:
            if self._copies is not None:
                return self._copies
            copies, their_copies = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            results, their_results = socket.socketpair()
            copies.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.queue_bytes)  # the kernel caps it
            copies.setblocking(False)
            env = dict(os.environ, **ONE_THREAD)
            # the same deckhand as this server, whatever the child's sys.path would be
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SOURCE_ROOT, env.get("PYTHONPATH")]))
            fds = (their_copies.fileno(), their_results.fileno())
            self._process = subprocess.Popen(
                [sys.executable, "-c", _CHILD, *map(str, fds), json.dumps(dataclasses.asdict(self.limits))],
                pass_fds=fds,
                env=env,
                stdin=subprocess.DEVNULL,
            )
            their_copies.close()
            their_results.close()
            threading.Thread(
                target=self._collect, args=(Connection(results.detach()), copies), name="deckhand-shadow", daemon=True
            ).start()
            self._copies = copies
            log.info("event=shadow_scorer_started pid=%s", self._process.pid)
            return copies

    def _collect(self, connection: Connection, copies: socket.socket) -> None:
        while True:
            try:
                batch = connection.recv()
            except (EOFError, OSError):
                break
            tallies, scored, by_id = batch
            for key, n in scored.items():
                counts = self._counts.get(key)
                if counts is not None:
                    counts.scored += n
            try:
                self.on_scored(tallies)
                if by_id and self.on_rows is not None:
                    self.on_rows(by_id)
            except Exception:  # counting must not stop the thread
                log.exception("event=shadow_result_failed")
        connection.close()
        if self._copies is copies:
            self._copies = None  # the next copy starts a new scorer
        copies.close()
        if not self._closed:
            exit_code = self._process.poll() if self._process is not None else None
            log.warning("event=shadow_scorer_died exitcode=%s", exit_code)

    def close(self, timeout: float = 2.0) -> None:
        self._closed = True
        copies, process = self._copies, self._process
        if copies is None or process is None:
            return
        copies.shutdown(socket.SHUT_WR)  # the scorer reads end-of-file and exits
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


SMALL_ROWS = 64  # arrays this small travel as lists: pickling an ndarray costs ~7 us, a short list ~1


def _pack(copy: ShadowCopy) -> bytes:
    """A copy as the bytes of one datagram: a plain tuple, small arrays as lists (this runs in
    the request path, once per request the champion answers)."""
    batch = copy.batch
    rows, array = batch.rows, batch.array
    if array is not None and len(array) <= SMALL_ROWS:
        rows, array = array.tolist(), None
    champion = copy.champion
    if isinstance(champion, np.ndarray) and len(champion) <= SMALL_ROWS:
        champion = champion.tolist()
    wire = (copy.key, copy.deployment_id, copy.challengers, batch.columns, rows, array, batch.frame, champion)
    return pickle.dumps((*wire, copy.timestamp, copy.ids), protocol=5)


def _unpack(data: bytes | memoryview) -> ShadowCopy:
    from deckhand.packages import Batch

    key, deployment_id, challengers, columns, rows, array, frame, champion, timestamp, ids = pickle.loads(data)
    return ShadowCopy(key, deployment_id, challengers, Batch(columns, rows, frame, array), champion, timestamp, ids)


# -- the scorer process ----------------------------------------------------------------------
_CHILD = (
    "import sys; from deckhand.serving.shadow import scorer_main; "
    "scorer_main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])"
)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_SOURCE_ROOT = str(Path(__file__).resolve().parents[2])


def scorer_main(copies_fd: int, results_fd: int, limits_json: str) -> None:
    """Score copies from the datagram socket until it closes (the server stopped or died);
    send results back at most every RESULTS_EVERY_S, batched (fewer wake-ups for the server).

    The copies waiting are scored together, one `predict()` per challenger (its fixed cost
    paid once, not per copy), and after each round the scorer rests so that it is busy at
    most DUTY of the time: under load the copies then gather into larger batches instead of
    taking the CPU's idle time (and the caches the server shares) away copy by copy."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(NICE)
    with contextlib.suppress(OSError, AttributeError):  # Linux: CPU time only when nothing else wants it
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    limits = PackageLimits(**json.loads(limits_json))
    copies = socket.socket(fileno=copies_fd)
    copies.setblocking(False)
    results = Connection(results_fd)
    models: OrderedDict[str, Any] = OrderedDict()
    tally = RequestTally(count_predictions=True)
    tallies: list[Tally] = []
    tally.add_sink(tallies.extend)
    scored: Counter[str] = Counter()  # copies scored per deployment key, since the last send
    by_id: list[ScoredRows] = []  # challengers' answers by association id, since the last send
    buffer = bytearray(MAX_COPY_BYTES)
    flush_at = time.monotonic() + RESULTS_EVERY_S
    rest_until = 0.0
    closed = False
    while not closed:
        now = time.monotonic()
        if now < rest_until:
            time.sleep(max(0.0, min(rest_until, flush_at if scored else rest_until) - now))
        else:
            wait = max(0.0, flush_at - now) if scored else None
            if select.select([copies], [], [], wait)[0]:
                batch, closed = _drain(copies, buffer)
                if batch:
                    started = time.monotonic()
                    for group, out in score_copies(models, batch, limits):
                        first = group[0]
                        scored[first.key] += len(group)
                        for r in out:
                            if r.rows_by_id is not None:
                                by_id.append(r.rows_by_id)
                            comparison = (r.compared, r.agreed, r.abs_diff_sum) if r.compared else None
                            tally.observe(
                                first.key, first.deployment_id, r.model_id, first.timestamp, r.status, r.rows,
                                r.seconds, r.error, r.predictions, True, comparison, requests=r.copies,
                            )  # fmt: skip
                    rest_until = time.monotonic() + max(MIN_REST_S, (time.monotonic() - started) * (1 / DUTY - 1))
        if scored and (closed or time.monotonic() >= flush_at):
            tally.drain()
            try:
                results.send(([_compact(t) for t in tallies], dict(scored), by_id))
            except OSError:
                break
            tallies.clear()
            scored.clear()
            by_id = []
            flush_at = time.monotonic() + RESULTS_EVERY_S


def _compact(tally: Tally) -> Tally:
    """One array of the predicted values rather than one per copy (less to pickle)."""
    if len(tally.value_arrays) > 1:
        tally.value_arrays = [np.concatenate(tally.value_arrays)]
    return tally


def _drain(copies: socket.socket, buffer: bytearray) -> tuple[list[ShadowCopy], bool]:
    """The copies waiting in the socket, up to MAX_BATCH_ROWS rows; and whether it closed."""
    view = memoryview(buffer)
    batch: list[ShadowCopy] = []
    rows = 0
    while rows < MAX_BATCH_ROWS:
        try:
            size = copies.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return batch, False
        if not size:  # end of file: the server is gone
            return batch, True
        copy = _unpack(view[:size])
        batch.append(copy)
        rows += len(copy.batch)
    return batch, False


def score_copies(
    models: OrderedDict[str, Any], copies: list[ShadowCopy], limits: PackageLimits
) -> list[tuple[list[ShadowCopy], list[ShadowResult]]]:
    """The copies grouped by deployment, challengers and columns, each group with its results.

    A group is scored in one call per challenger, which gives one result counting all its
    copies (each given the call's seconds: what the challenger would take to answer that
    load with the server's micro-batching; the group counts in its first copy's minute). A
    call that fails is retried copy by copy, so a challenger that fails on some rows is
    charged only for the copies holding them."""
    groups: dict[tuple[Any, ...], list[ShadowCopy]] = {}
    for copy in copies:
        groups.setdefault((copy.key, copy.deployment_id, copy.challengers, tuple(copy.batch.columns)), []).append(copy)
    scored = []
    for group in groups.values():
        results = [
            r for model_id, path in group[0].challengers for r in _score_group(models, model_id, path, group, limits)
        ]
        scored.append((group, results))
    return scored


def _score_group(
    models: OrderedDict[str, Any], model_id: str, path: str, group: list[ShadowCopy], limits: PackageLimits
) -> list[ShadowResult]:
    from deckhand.packages import Batch

    if len(group) == 1:
        return [_score(models, model_id, path, group[0], limits)]
    try:
        model = _model(models, path, limits)
        started = time.perf_counter()
        predictions = model.predict(Batch.concat([c.batch for c in group]))
        answers, regression = _answers(model, predictions)
        seconds = time.perf_counter() - started
    except Exception:  # attribute the failure to the copies that cause it
        return [_score(models, model_id, path, copy, limits) for copy in group]
    if regression:
        champion: Any = np.concatenate([np.asarray(c.champion, dtype=float) for c in group])
    else:
        champion = [label for c in group for label in c.champion]
    rows = len(answers)
    compared, agreed, abs_diff = compare(champion, answers, regression) if len(champion) == rows else (0, 0, 0.0)
    by_id = _by_id(group, model_id, model, predictions)
    return [ShadowResult(model_id, rows, seconds, 200, None, answers, compared, agreed, abs_diff, len(group), by_id)]


def _answers(model: Any, predictions: Any) -> tuple[Any, bool]:
    """The model's answers (values, or labels) and whether they are values."""
    from deckhand.serving.codecs import prediction_labels

    regression = not model.manifest.class_labels
    return (predictions.values if regression else prediction_labels(predictions, model.manifest)), regression


def _by_id(copies: list[ShadowCopy], model_id: str, model: Any, predictions: Any) -> ScoredRows | None:
    """The answers of the rows that have association ids (copies scored together, in order)."""
    if not any(c.ids for c in copies):
        return None
    labels = model.manifest.class_labels
    if labels and predictions.probabilities is not None:
        values: list[Any] = predictions.probabilities.tolist()
    else:
        values = np.asarray(predictions.values, dtype=float).tolist() if not labels else _answers(model, predictions)[0]
    ids: list[str] = []
    kept: list[Any] = []
    start = 0
    for copy in copies:
        n = len(copy.batch)
        if copy.ids and len(copy.ids) == n:
            ids.extend(copy.ids)
            kept.extend(values[start : start + n])
        start += n
    first = copies[0]
    return (first.deployment_id, model_id, ids, kept, list(labels) if labels else None, first.timestamp)


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

    rows = len(copy.batch)
    started = time.perf_counter()
    try:
        model = _model(models, path, limits)
        started = time.perf_counter()  # the latency of scoring, not of the first load
        predictions = model.predict(copy.batch)
        answers, regression = _answers(model, predictions)
        seconds = time.perf_counter() - started
    except ModelInputError:
        return ShadowResult(model_id, rows, time.perf_counter() - started, 422, "user", [], 0, 0, 0.0)
    except Exception as exc:
        _failures[model_id] = failures = _failures.get(model_id, 0) + 1
        if failures == 1 or failures % 1000 == 0:  # a broken challenger must not flood the log
            log.warning("event=challenger_failed model_id=%s failures=%d error=%r", model_id, failures, exc)
        return ShadowResult(model_id, rows, time.perf_counter() - started, 500, "system", [], 0, 0, 0.0)
    compared, agreed, abs_diff = compare(copy.champion, answers, regression)
    by_id = _by_id([copy], model_id, model, predictions)
    return ShadowResult(model_id, rows, seconds, 200, None, answers, compared, agreed, abs_diff, 1, by_id)


_failures: dict[str, int] = {}  # the scorer's failures per challenger


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

"""Challengers: score copies of answered requests in a scorer process, never in the way.

After the champion's response is sent, the server hands the decoded batch and the champion's
answers to `ShadowScorer.submit` -- unless other requests are waiting for a model, when the
copy is shed and counted (`deckhand serve --shadow-copies idle`, the default: on a busy
server the copy's work would come out of theirs). `submit` copies numeric rows and values
into two growing arrays per deployment (other forms wait in a list). They cross to the
scorer with the first copy FLUSH_S after the first one waiting -- just after a response,
when the next request has most likely not come yet -- or sooner at FLUSH_COPIES copies or
`flush_bytes`, or by a LAST_FLUSH_S timer when no copy comes: a numeric group as its
arrays' memory in one `sendmsg` (`_Wire`), nothing pickled. (A send per request cost the
server about 10 us of CPU per request, 10 % of a 1-row prediction; a flush that joined and
pickled an object per copy took 136 us on the event loop every 10 ms, and the requests
behind it waited.)

One scorer process per server worker, started on the first copies at nice +10 under
SCHED_IDLE (a fresh interpreter, one BLAS thread), is fed over a datagram socket pair whose
kernel buffer is the bounded queue: a flush that does not fit is dropped and counted,
and nothing waits without bound. The scorer loads each challenger's package itself (from the
extracted path; kept loaded), scores the copies waiting together (one `predict()` per
challenger), compares its answers with the champion's and counts them into its own shadow
tallies (`deckhand.serving.tally`); then it rests, at least MIN_REST_S and so that it is
busy at most DUTY of the time (the copies gather meanwhile). A process rather than a thread:
a thread would compete for the GIL with the request path, and the nice value and SCHED_IDLE
put its CPU time behind the server's.

Every RESULTS_EVERY_S the scorer sends its tallies -- a few objects per challenger and
minute, however many copies they count -- and a thread of the server hands them to
`on_scored` (the data plane adds them to its own tally: docs/rollouts.md). Results sent
copy by copy cost the server more than the copies did: unpickling thousands of them holds
the GIL for milliseconds, and the request path waits. A scorer that dies is started again
with the next flush; a scorer whose server dies sees its socket close and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import json
import logging
import os
import pickle
import select
import socket
import struct
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
RESULTS_EVERY_S = 1.0  # the scorer sends results batched (tallies count by the minute)
MAX_BATCH_ROWS = 4096  # copies scored in one predict() per challenger
DUTY = 0.25  # the scorer's busy share of time at most: it rests 3x as long as it scored
MIN_REST_S = 0.2  # and at least this long: copies gather, and it wakes 5 times a second at most
FULL_BACKOFF_S = 0.005  # after a full buffer, copies are dropped without trying for this long
# Each flush, and each time the scorer wakes, slows the request that meets it a little: at
# one client, flushes every 10 ms (1 request in 50) and a scorer waking 40 times a second
# put the champion's p99 (1 in 100) 17 % up. Every 0.2 s or 1024 copies, at the same 5,000
# requests a second, about 1 in 500 meets either.
FLUSH_S = 0.2  # copies wait in the server this long, then cross with the next copy (between requests)
LAST_FLUSH_S = 0.6  # or, when no copy comes, by a timer (which may fire during a request)
FLUSH_COPIES = 1024  # or until this many are waiting
FLUSH_BYTES = 1024**2  # or until they hold about this much (8 bytes a value), and half the socket buffer at most
NICE = 10
REGRESSION_TOLERANCE = 0.01  # regression answers agree within 1 % of each other
_CACHED_MODELS = 16  # challenger models the scorer keeps loaded


@dataclass(frozen=True)
class ShadowCopy:
    """One answered request's copy for the challengers (a `CopyGroup` is many of them)."""

    key: str
    deployment_id: str
    challengers: tuple[tuple[str, str], ...]  # (model id, extracted package path)
    batch: Any  # deckhand.packages.Batch
    champion: Any  # the champion's labels, or its values (list or array)
    timestamp: float
    ids: list[str] | None = None  # the rows' association ids, when the deployment gives them


GroupKey = tuple[str, str, tuple[tuple[str, str], ...], tuple[str, ...]]  # key, deployment, challengers, columns


@dataclass(frozen=True)
class CopyGroup:
    """Copies of requests to one deployment with the same challengers and columns, their rows
    and the champion's answers joined: what a flush sends (one per group), and what the
    scorer scores in one `predict()` per challenger. Rows arrive as one array when the
    requests' rows were arrays, so the scorer makes no object per copy or row."""

    key: str
    deployment_id: str
    challengers: tuple[tuple[str, str], ...]
    batch: Any  # deckhand.packages.Batch: every copy's rows, in order
    champion: Any  # the champion's answers for those rows: labels (list) or values (array)
    sizes: tuple[int, ...]  # rows per copy
    timestamp: float  # the first copy's (the group counts in its minute)
    ids: tuple[list[str] | None, ...] | None = None  # per copy, when any has association ids

    @property
    def group_key(self) -> GroupKey:
        return (self.key, self.deployment_id, self.challengers, tuple(self.batch.columns))

    @staticmethod
    def join(copies: list[ShadowCopy]) -> list[CopyGroup]:
        """The copies by deployment, challengers and columns, in order, each group joined."""
        groups: dict[GroupKey, _Gathering] = {}
        for c in copies:
            _gather(groups, c.key, c.deployment_id, c.challengers, c.batch, c.champion, c.ids, c.timestamp)
        return [gathering.group() for gathering in groups.values()]

    @staticmethod
    def merge(groups: list[CopyGroup]) -> CopyGroup:
        """Groups with the same `group_key` (flushes waiting together) as one."""
        from deckhand.packages import Batch

        if len(groups) == 1:
            return groups[0]
        first = groups[0]
        ids = None
        if any(g.ids for g in groups):
            ids = tuple(i for g in groups for i in (g.ids or (None,) * len(g.sizes)))
        return CopyGroup(
            first.key, first.deployment_id, first.challengers, Batch.concat([g.batch for g in groups]),
            _joined([g.champion for g in groups]), tuple(n for g in groups for n in g.sizes), first.timestamp, ids,
        )  # fmt: skip

    def copies(self) -> list[ShadowCopy]:
        """The copies again, one by one (a challenger that failed the group is retried so)."""
        out, start = [], 0
        for index, n in enumerate(self.sizes):
            ids = self.ids[index] if self.ids else None
            batch, champion = self.batch.slice(start, start + n), self.champion[start : start + n]
            out.append(ShadowCopy(self.key, self.deployment_id, self.challengers, batch, champion, self.timestamp, ids))
            start += n
        return out


class _Gathering:
    """One group's copies waiting for a flush. Numeric rows and values (the usual request)
    are copied into two growing arrays as they come, so the flush -- which runs on the event
    loop, between requests -- sends the arrays' memory as it is (`arrays`), nothing pickled
    and no object per copy; any other copy turns the group to lists, joined at the flush."""

    def __init__(self, group_key: GroupKey, timestamp: float):
        self.group_key = group_key
        self.key, self.deployment_id, self.challengers, columns = group_key
        self.columns = list(columns)
        self.timestamp = timestamp
        self.sizes: list[int] = []
        self.ids: list[list[str] | None] = []
        self.batches: list[Any] = []  # copies kept as they are, joined at the flush
        self.champions: list[Any] = []
        self._rows: np.ndarray | None = None  # numeric copies' rows, filled up to _used
        self._values: np.ndarray | None = None  # and the champion's values for them
        self._used = 0

    def add(self, batch: Any, champion: Any, ids: list[str] | None) -> None:
        n = len(batch)
        array = batch.array
        if not self.batches and array is not None and array.dtype == np.float64 and _are_values(champion, n):
            self._append(array, champion)
        else:
            self._to_lists()
            self.batches.append(batch)
            self.champions.append(champion)
        self.sizes.append(n)
        self.ids.append(ids)

    @property
    def has_ids(self) -> bool:
        return any(self.ids)

    @property
    def numeric(self) -> bool:
        """Every copy's rows and values are in the two arrays."""
        return not self.batches and self._used > 0

    def _append(self, rows: np.ndarray, values: np.ndarray | list[float]) -> None:
        used, n = self._used, len(rows)
        if self._rows is None or self._values is None or used + n > len(self._rows):
            size = max(64, 2 * (used + n))
            grown_rows, grown_values = np.empty((size, rows.shape[1])), np.empty(size)
            if self._rows is not None and self._values is not None:
                grown_rows[:used], grown_values[:used] = self._rows[:used], self._values[:used]
            self._rows, self._values = grown_rows, grown_values
        if n == 1:  # the usual 1-row request: no slices
            self._rows[used], self._values[used] = rows[0], values[0]
        else:
            self._rows[used : used + n], self._values[used : used + n] = rows, values
        self._used = used + n

    def _to_lists(self) -> None:
        """The numeric copies so far as one batch in the lists (a copy of another kind came)."""
        from deckhand.packages import Batch

        if self._used and self._rows is not None and self._values is not None:
            self.batches.append(Batch(columns=self.columns, array=self._rows[: self._used]))
            self.champions.append(self._values[: self._used])
        self._rows = self._values = None
        self._used = 0

    def group(self) -> CopyGroup:
        from deckhand.packages import Batch

        self._to_lists()
        ids = tuple(self.ids) if self.has_ids else None
        return CopyGroup(
            self.key, self.deployment_id, self.challengers, Batch.concat(self.batches), _joined(self.champions),
            tuple(self.sizes), self.timestamp, ids,
        )  # fmt: skip

    def arrays(self, group_id: int) -> list[Any]:
        """A numeric group as the buffers of one datagram (`_Wire.ARRAYS`): a header, then
        the copies' sizes, rows and values as they are in memory (and their association
        ids, pickled, when any copy has some)."""
        assert self._rows is not None and self._values is not None
        used = self._used
        header = _Wire.HEADER.pack(_Wire.ARRAYS, group_id, len(self.sizes), used, len(self.columns), self.timestamp)
        buffers = [header, np.array(self.sizes, dtype=np.int64), self._rows[:used], self._values[:used]]
        return [*buffers, pickle.dumps(tuple(self.ids))] if self.has_ids else buffers


def _gather(
    groups: dict[GroupKey, _Gathering],
    key: str,
    deployment_id: str,
    challengers: tuple[tuple[str, str], ...],
    batch: Any,
    champion: Any,
    ids: list[str] | None,
    timestamp: float,
) -> None:
    """Add a copy to its group in `groups` (a new group starts at this copy's time)."""
    group_key = (key, deployment_id, challengers, tuple(batch.columns))
    gathering = groups.get(group_key)
    if gathering is None:
        gathering = groups[group_key] = _Gathering(group_key, timestamp)
    gathering.add(batch, champion, ids)


def _are_values(champion: Any, n: int) -> bool:
    """Whether the champion's n answers are values: a float64 array, or the list of floats a
    regression's response was encoded from (not labels)."""
    if isinstance(champion, list):
        return len(champion) == n and all(type(v) is float for v in champion)
    return isinstance(champion, np.ndarray) and champion.dtype == np.float64 and champion.shape == (n,)


def _joined(answers: list[Any]) -> Any:
    """The champion's answers of several copies as one: an array of values, or a label list."""
    if len(answers) == 1:
        return answers[0]
    if all(isinstance(a, np.ndarray) for a in answers):
        return np.concatenate(answers)
    return [label for a in answers for label in a]


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
    dropped: int = 0  # the scorer's queue was full, or the copy too large
    shed: int = 0  # not taken: other requests were waiting for a model (DataPlane.shadow_copy)
    passed_over: int = 0  # not copied: outside the deployment's copy share (MixRouting.takes_copy)

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent, "scored": self.scored, "dropped": self.dropped, "shed": self.shed,
            "passedOver": self.passed_over,
        }  # fmt: skip


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
        self._pending: dict[GroupKey, _Gathering] = {}  # copies waiting for the next flush
        self._numbers: dict[GroupKey, int] = {}  # numeric groups the scorer knows, by number (`_Wire`)
        self._pending_copies = 0
        self._pending_bytes = 0
        # a datagram larger than the socket's buffer cannot be sent at all: a flush takes half
        # of it at most, so that the next one fits behind it
        self.flush_bytes = min(FLUSH_BYTES, _socket_buffer_bytes(queue_bytes) // 2)
        self._too_large = 0
        self._flush_timer: asyncio.TimerHandle | None = None  # set while copies wait
        self._due = 0.0  # when they are to cross (time.monotonic)
        self._dropped_flushes = 0

    def counts(self, key: str) -> dict[str, int]:
        return self._counts.get(key, ShadowCounts()).as_dict()

    def _counted(self, key: str) -> ShadowCounts:
        return self._counts.get(key) or self._counts.setdefault(key, ShadowCounts())

    def shed(self, key: str) -> None:
        """Count a copy not taken because the server was busy."""
        self._counted(key).shed += 1

    def pass_over(self, key: str) -> None:
        """Count a request not copied: outside the deployment's copy share."""
        self._counted(key).passed_over += 1

    def submit(
        self,
        key: str,
        deployment_id: str,
        challengers: tuple[tuple[str, str], ...],
        batch: Any,
        champion: Any,
        ids: list[str] | None = None,
    ) -> None:
        """Queue a copy for the next flush (dropped, and counted, when the scorer's queue was
        full a moment ago or the request is too large to copy)."""
        counts = self._counted(key)
        if len(batch) > self.max_rows or self._closed:
            counts.dropped += 1
            return
        now = time.monotonic()
        if now < self._full_until:  # full a moment ago: not even kept
            counts.dropped += 1
            return
        size = 8 * len(batch) * (len(batch.columns) + 1)  # its rows and the champion's values, as floats
        if size > self.flush_bytes:
            counts.dropped += 1
            self._too_large += 1
            if self._too_large % 100 == 1:  # many large requests must not flood the log
                log.warning(
                    "event=shadow_copy_too_large rows=%d bytes=%d limit=%d copies_too_large=%d "
                    "hint=the limit is half the copies' socket buffer, which the kernel caps at "
                    "net.core.wmem_max; raise that sysctl to copy larger requests",
                    len(batch), size, self.flush_bytes, self._too_large,
                )  # fmt: skip
            return
        if self._pending and self._pending_bytes + size > self.flush_bytes:
            self.flush()  # a large copy travels in a flush of its own
        _gather(self._pending, key, deployment_id, challengers, batch, champion, ids, time.time())
        self._pending_copies += 1
        self._pending_bytes += size
        if self._pending_copies == 1:  # the first copy waiting
            self._due = now + FLUSH_S
        if self._pending_copies >= FLUSH_COPIES or self._pending_bytes >= self.flush_bytes or now >= self._due:
            self.flush()  # here, just after a response, the next request has most likely not come yet
        elif self._flush_timer is None:
            try:
                self._flush_timer = asyncio.get_running_loop().call_later(LAST_FLUSH_S, self.flush)
            except RuntimeError:  # no event loop in this thread (a direct call): send now
                self.flush()

    def flush(self) -> None:
        """Send the waiting copies to the scorer -- a numeric group as its arrays, the others
        pickled together -- or drop them (counted) when its buffer is full; never blocks."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        pending, self._pending, self._pending_copies, self._pending_bytes = self._pending, {}, 0, 0
        pickled = []
        for gathering in pending.values():
            if gathering.numeric and (gathering.group_key in self._numbers or len(self._numbers) < _Wire.MAX_NUMBERED):
                self._send([gathering], self._send_arrays)
            else:
                pickled.append(gathering)
        if pickled:
            self._send(pickled, self._send_pickled)

    @staticmethod
    def _send_pickled(copies: socket.socket, gatherings: list[_Gathering]) -> None:
        """Groups in any form, pickled together: one datagram."""
        copies.sendmsg([_Wire.GROUPS, _pack([gathering.group() for gathering in gatherings])])

    def _send_arrays(self, copies: socket.socket, gatherings: list[_Gathering]) -> None:
        """A numeric group's arrays, its deployment, challengers and columns defined under a
        number first, once per scorer."""
        (gathering,) = gatherings
        number = self._numbers.get(gathering.group_key)
        if number is None:
            number = len(self._numbers)
            copies.send(_Wire.DEFINE + pickle.dumps((number, *gathering.group_key)))
            self._numbers[gathering.group_key] = number
        copies.sendmsg(gathering.arrays(number))

    def _send(self, gatherings: list[_Gathering], send: Callable[[socket.socket, list[_Gathering]], None]) -> None:
        """`send` the copies through the scorer's socket (the scorer started if need be), each
        datagram whole or not at all; the copies counted as sent, or dropped."""
        keys: Counter[str] = Counter()
        for gathering in gatherings:
            keys[gathering.key] += len(gathering.sizes)
        try:
            send(self._copies or self._start(), gatherings)
        except (BlockingIOError, OSError) as exc:  # full (or, EMSGSIZE, larger than the buffer)
            for key, n in keys.items():
                self._counts[key].dropped += n
            if isinstance(exc, BlockingIOError):
                self._full_until = time.monotonic() + FULL_BACKOFF_S
            if not isinstance(exc, BlockingIOError | InterruptedError) and exc.errno != errno.EMSGSIZE:
                self._copies = None  # the scorer is gone: the next flush starts another
            else:
                self._dropped_flushes += 1
                if self._dropped_flushes % 100 == 1:  # a slow scorer must not flood the log
                    log.warning("event=shadow_queue_full flushes_dropped=%d", self._dropped_flushes)
            return
        for key, n in keys.items():
            self._counts[key].sent += n

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
            self._numbers = {}  # a new scorer knows no numbered group yet
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
        self.flush()  # what is waiting still goes
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


@functools.cache
def _socket_buffer_bytes(queue_bytes: int) -> int:
    """The send buffer the kernel gives a copies' socket that asks for `queue_bytes`: capped
    by net.core.wmem_max (208 KiB on many hosts), then doubled for its bookkeeping."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, queue_bytes)
        return int(ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))


class _Wire:
    """What crosses the copies' socket: one tagged message per datagram.

    DEFINE: a numeric group's key, deployment, challengers and columns under a number
    (pickled; once per group and scorer). ARRAYS: copies of that group: HEADER, then their
    sizes (int64), rows and values (float64) as they were in the server's memory -- the
    usual flush, sent without pickling anything -- and, only when the copies have
    association ids, those (pickled). GROUPS: any other copies, pickled (`_pack`).
    The scorer keeps a `_Wire` to `decode` them with what DEFINE told it."""

    DEFINE, ARRAYS, GROUPS = b"D", b"A", b"G"
    HEADER = struct.Struct("=c7xqqqqd")  # tag, number, copies, rows, columns, first copy's time (8-byte aligned)
    MAX_NUMBERED = 1024  # numbered groups per scorer; more go as GROUPS (whatever columns clients send)

    def __init__(self) -> None:
        self.defined: dict[int, GroupKey] = {}

    def decode(self, message: memoryview) -> list[CopyGroup]:
        """The copy groups in one datagram (a DEFINE has none; the arrays are copied out of
        `message`, whose buffer the next datagram reuses)."""
        from deckhand.packages import Batch

        tag = bytes(message[:1])
        if tag == self.GROUPS:
            return _unpack(message[1:])
        if tag == self.DEFINE:
            number, *group_key = pickle.loads(message[1:])
            self.defined[number] = tuple(group_key)  # type: ignore[assignment]
            return []
        _, number, copies, rows, columns, timestamp = self.HEADER.unpack_from(message)
        if number not in self.defined:  # cannot happen: DEFINE goes first on the same socket
            log.warning("event=shadow_group_unknown number=%d copies=%d", number, copies)
            return []
        key, deployment_id, challengers, names = self.defined[number]
        sizes = np.frombuffer(message, np.int64, copies, self.HEADER.size)
        at = self.HEADER.size + sizes.nbytes
        array = np.frombuffer(message, np.float64, rows * columns, at).reshape(rows, columns).copy()
        values = np.frombuffer(message, np.float64, rows, at + array.nbytes).copy()
        at += array.nbytes + values.nbytes
        ids = pickle.loads(message[at:]) if len(message) > at else None
        batch = Batch(columns=list(names), array=array)
        return [CopyGroup(key, deployment_id, challengers, batch, values, tuple(sizes.tolist()), timestamp, ids)]


def _pack(groups: list[CopyGroup]) -> bytes:
    """A flush as the bytes of one datagram: plain tuples (arrays pickle as their bytes)."""
    wire = [
        (
            g.key,
            g.deployment_id,
            g.challengers,
            g.batch.columns,
            g.batch.rows,
            g.batch.array,
            g.batch.frame,
            g.champion,
            g.sizes,
            g.timestamp,
            g.ids,
        )  # fmt: skip
        for g in groups
    ]
    return pickle.dumps(wire, protocol=5)


def _unpack(data: bytes | memoryview) -> list[CopyGroup]:
    """The groups of one flush."""
    from deckhand.packages import Batch

    return [
        CopyGroup(key, deployment_id, challengers, Batch(columns, rows, frame, array), champion, sizes, timestamp, ids)
        for key, deployment_id, challengers, columns, rows, array, frame, champion, sizes, timestamp, ids in (
            pickle.loads(data)
        )
    ]


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
    wire = _Wire()
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
                batch, closed = _drain(copies, buffer, wire)
                if batch:
                    started = time.monotonic()
                    for group, out in score_copies(models, batch, limits):
                        scored[group.key] += len(group.sizes)
                        for r in out:
                            if r.rows_by_id is not None:
                                by_id.append(r.rows_by_id)
                            comparison = (r.compared, r.agreed, r.abs_diff_sum) if r.compared else None
                            tally.observe(
                                group.key, group.deployment_id, r.model_id, group.timestamp, r.status, r.rows,
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


def _drain(copies: socket.socket, buffer: bytearray, wire: _Wire) -> tuple[list[CopyGroup], bool]:
    """The copies waiting in the socket (whole flushes, until MAX_BATCH_ROWS rows); and
    whether it closed."""
    view = memoryview(buffer)
    batch: list[CopyGroup] = []
    rows = 0
    while rows < MAX_BATCH_ROWS:
        try:
            size = copies.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return batch, False
        if not size:  # end of file: the server is gone
            return batch, True
        flushed = wire.decode(view[:size])
        batch.extend(flushed)
        rows += sum(sum(group.sizes) for group in flushed)
    return batch, False


def score_copies(
    models: OrderedDict[str, Any], groups: list[CopyGroup], limits: PackageLimits
) -> list[tuple[CopyGroup, list[ShadowResult]]]:
    """The groups waiting (flushes merged by deployment, challengers and columns), each with
    its results.

    A group is scored in one call per challenger, which gives one result counting all its
    copies (each given the call's seconds: what the challenger would take to answer that
    load with the server's micro-batching; the group counts in its first copy's minute). A
    call that fails is retried copy by copy, so a challenger that fails on some rows is
    charged only for the copies holding them."""
    by_key: dict[GroupKey, list[CopyGroup]] = {}
    for group in groups:
        by_key.setdefault(group.group_key, []).append(group)
    scored = []
    for same in by_key.values():
        group = CopyGroup.merge(same)
        results = [
            r for model_id, path in group.challengers for r in _score_group(models, model_id, path, group, limits)
        ]
        scored.append((group, results))
    return scored


def _score_group(
    models: OrderedDict[str, Any], model_id: str, path: str, group: CopyGroup, limits: PackageLimits
) -> list[ShadowResult]:
    if len(group.sizes) == 1:
        return [_score(models, model_id, path, group.copies()[0], limits)]
    try:
        model = _model(models, path, limits)
        started = time.perf_counter()
        predictions = model.predict(group.batch)
        answers, regression = _answers(model, predictions)
        seconds = time.perf_counter() - started
    except Exception:  # attribute the failure to the copies that cause it
        return [_score(models, model_id, path, copy, limits) for copy in group.copies()]
    champion = np.asarray(group.champion, dtype=float) if regression else group.champion
    rows = len(answers)
    compared, agreed, abs_diff = compare(champion, answers, regression) if len(champion) == rows else (0, 0, 0.0)
    by_id = _by_id(group, model_id, model, predictions)
    return [
        ShadowResult(model_id, rows, seconds, 200, None, answers, compared, agreed, abs_diff, len(group.sizes), by_id)
    ]


def _answers(model: Any, predictions: Any) -> tuple[Any, bool]:
    """The model's answers (values, or labels) and whether they are values."""
    from deckhand.serving.codecs import prediction_labels

    regression = not model.manifest.class_labels
    return (predictions.values if regression else prediction_labels(predictions, model.manifest)), regression


def _by_id(group: CopyGroup, model_id: str, model: Any, predictions: Any) -> ScoredRows | None:
    """The answers of the rows that have association ids (the group's copies, in order)."""
    if not group.ids:
        return None
    labels = model.manifest.class_labels
    if labels and predictions.probabilities is not None:
        values: list[Any] = predictions.probabilities.tolist()
    else:
        values = np.asarray(predictions.values, dtype=float).tolist() if not labels else _answers(model, predictions)[0]
    ids: list[str] = []
    kept: list[Any] = []
    start = 0
    for copy_ids, n in zip(group.ids, group.sizes, strict=True):
        if copy_ids and len(copy_ids) == n:
            ids.extend(copy_ids)
            kept.extend(values[start : start + n])
        start += n
    return (group.deployment_id, model_id, ids, kept, list(labels) if labels else None, group.timestamp)


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
    by_id = _by_id(CopyGroup.join([copy])[0], model_id, model, predictions)
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

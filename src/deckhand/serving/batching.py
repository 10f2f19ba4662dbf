"""Micro-batching: concurrent small requests to one model share one predict() call.

A request's rows join the pending batch; the batch is flushed on the event loop when
`max_rows` is reached or after `max_wait_s` (0 = at the end of the current loop turn,
which already gathers every request that arrived together). Scikit-learn spends about
as long on 1 row as on 64, so under load this multiplies throughput at no latency cost.

Large requests skip the batch and run in a worker thread so the loop keeps serving.
If a merged batch fails, each request is retried alone, so one bad request cannot fail
its neighbours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

from deckhand.packages.model import Batch, Predictions

PredictFn = Callable[[Batch], Predictions]

# A batch is flushed once it holds this many rows. Large enough that concurrent 100-row
# requests share a call too: a GradientBoostingRegressor of 100 trees spends about 240 us
# per call whatever its size plus 0.36 us per row, so ten 100-row requests cost 600 us
# merged against 2.8 ms apart; a merged batch this size still takes well under 1 ms.
DEFAULT_MAX_BATCH_ROWS = 1024


class MicroBatcher:
    def __init__(
        self,
        predict: PredictFn,
        *,
        max_rows: int = DEFAULT_MAX_BATCH_ROWS,
        max_wait_s: float = 0.0,
        inline_max_rows: int = 1000,
        executor: Executor | None = None,
        enabled: bool = True,
    ) -> None:
        self._predict = predict
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.inline_max_rows = inline_max_rows
        self.executor = executor
        self.enabled = enabled
        self._pending: list[tuple[Batch, asyncio.Future[Predictions]]] = []
        self._pending_rows = 0
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None
        self.flushes = 0
        self.batched_requests = 0

    async def predict(self, batch: Batch) -> Predictions:
        loop = asyncio.get_running_loop()
        rows = len(batch)
        if rows > self.inline_max_rows:
            return await loop.run_in_executor(self.executor, self._predict, batch)
        if not self.enabled or rows >= self.max_rows:
            return self._predict(batch)
        future: asyncio.Future[Predictions] = loop.create_future()
        self._pending.append((batch, future))
        self._pending_rows += rows
        if self._pending_rows >= self.max_rows:
            self._flush()
        elif self._scheduled is None:
            if self.max_wait_s > 0:
                self._scheduled = loop.call_later(self.max_wait_s, self._flush)
            else:
                self._scheduled = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        items, self._pending, self._pending_rows = self._pending, [], 0
        if not items:
            return
        self.flushes += 1
        self.batched_requests += len(items)
        if len(items) == 1:
            self._settle_one(*items[0])
            return
        try:
            merged = self._predict(Batch.concat([batch for batch, _ in items]))
        except Exception:
            for batch, future in items:  # find which request was at fault
                self._settle_one(batch, future)
            return
        start = 0
        for batch, future in items:
            stop = start + len(batch)
            if not future.done():
                future.set_result(merged.slice(start, stop))
            start = stop

    def _settle_one(self, batch: Batch, future: asyncio.Future[Predictions]) -> None:
        if future.done():
            return
        try:
            future.set_result(self._predict(batch))
        except Exception as exc:
            future.set_exception(exc)

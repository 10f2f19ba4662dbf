"""Micro-batching merges concurrent requests and isolates a bad one."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from deckhand.packages.model import Batch, Predictions
from deckhand.serving.batching import MicroBatcher


class Recorder:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, batch: Batch) -> Predictions:
        array = batch.to_array()
        if np.isnan(array).any():
            raise ValueError("NaN in input")
        self.calls.append(len(batch))
        return Predictions(values=array.sum(axis=1))


def _one(value: float) -> Batch:
    return Batch(["x", "y"], rows=[[value, 1.0]])


def test_concurrent_requests_share_one_call() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_rows=64)

    async def main() -> list[Predictions]:
        return await asyncio.gather(*(batcher.predict(_one(float(i))) for i in range(10)))

    results = asyncio.run(main())
    assert recorder.calls == [10]
    assert [r.values.tolist() for r in results] == [[float(i) + 1.0] for i in range(10)]


def test_max_rows_flushes_early_and_wait_gathers() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_rows=4, max_wait_s=0.01)

    async def main() -> None:
        await asyncio.gather(*(batcher.predict(_one(1.0)) for i in range(10)))

    asyncio.run(main())
    assert recorder.calls == [4, 4, 2]


def test_a_bad_request_fails_alone() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_rows=64)

    async def main() -> list[object]:
        batches = [_one(1.0), _one(float("nan")), _one(2.0)]
        return await asyncio.gather(*(batcher.predict(b) for b in batches), return_exceptions=True)

    good, bad, good2 = asyncio.run(main())
    assert isinstance(bad, ValueError)
    assert good.values.tolist() == [2.0] and good2.values.tolist() == [3.0]  # type: ignore[union-attr]


def test_large_requests_go_to_a_thread() -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, max_rows=8, inline_max_rows=10)
    big = Batch(["x", "y"], rows=[[1.0, 1.0]] * 50)
    result = asyncio.run(batcher.predict(big))
    assert recorder.calls == [50] and len(result) == 50
    assert batcher.flushes == 0


@pytest.mark.parametrize("enabled", [False])
def test_disabled_calls_per_request(enabled: bool) -> None:
    recorder = Recorder()
    batcher = MicroBatcher(recorder, enabled=enabled)

    async def main() -> None:
        await asyncio.gather(*(batcher.predict(_one(1.0)) for _ in range(3)))

    asyncio.run(main())
    assert recorder.calls == [1, 1, 1]


def test_by_default_concurrent_100_row_requests_share_a_call_too() -> None:
    """The default flush size lets ten 100-row requests pay one predict() call's fixed cost."""
    recorder = Recorder()
    batcher = MicroBatcher(recorder)

    def hundred(value: float) -> Batch:
        return Batch(["x", "y"], array=np.full((100, 2), value))

    async def main() -> list[Predictions]:
        return await asyncio.gather(*(batcher.predict(hundred(float(i))) for i in range(16)))

    results = asyncio.run(main())
    assert recorder.calls == [1100, 500]  # flushed once a batch holds >= DEFAULT_MAX_BATCH_ROWS rows
    assert [r.values.tolist() for r in results] == [[2.0 * i] * 100 for i in range(16)]

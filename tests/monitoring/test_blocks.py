"""The columnar block format on the channel: what the agent makes of blocks is exactly what
it makes of the same records one per line, and what cannot be folded travels unchanged."""

from __future__ import annotations

import random

import numpy as np
import orjson

from deckhand.monitoring import sketch
from deckhand.monitoring.aggregate import Aggregator
from deckhand.monitoring.records import (
    BLOCK_RECORDS,
    MINUTE_START,
    Record,
    data_record,
    decode_batch,
    encode_batch,
    is_block,
    record_count,
    stats_record,
    to_blocks,
)

CLASSES = ["setosa", "versicolor", "virginica"]


def _mixed_records(n: int, seed: int = 1) -> list[Record]:
    """Statistics-only, data-only and combined records over 3 deployments and 3 minutes,
    with missing values, categories, probability vectors and association ids."""
    rng = random.Random(seed)
    out: list[Record] = []
    for i in range(n):
        deployment, ts = f"d{i % 3}", 1_763_740_000.0 + i * 180.0 / n
        kind = i % 4
        record: Record = {}
        if kind in (0, 1):
            record = stats_record(deployment, "m", rng.randint(1, 4), rng.random() * 20, int(i % 50 == 0), 0, ts)
        if kind in (1, 2):
            row = {"x": rng.gauss(5, 1), "colour": rng.choice(["red", "blue", None]), "flag": rng.random() < 0.5}
            record.update(data_record(deployment, "m", [row], [rng.choice(CLASSES)], timestamp=ts))
        if kind == 3:
            proba = [[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]]
            record = data_record(deployment, "m", {"x": [1.0, 2.0]}, proba, CLASSES, ["a1", "a2"], ts)
        out.append(record)
    return out


def _aggregate(items: list[Record]) -> tuple[list[dict], list[tuple], int, int]:
    """The aggregates, and the (deployment, minute, association id, prediction) of the scored
    items that association ids become (a block makes one item of what lines make several)."""
    aggregator = Aggregator()
    for item in items:
        aggregator.add("source", item)
    drained = aggregator.drain()
    aggregates = sorted((a for a in drained if "minute" in a), key=lambda a: (a["deploymentId"], a["minute"]))
    scored = sorted(
        (a["deploymentId"], int(a["ts"] // 60), i, str(p))
        for a in drained
        if a.get("kind") == "scored"
        for i, p in zip(a["associationIds"], a["predictions"], strict=True)
    )
    return aggregates, scored, aggregator.records, aggregator.invalid


def test_blocks_aggregate_exactly_like_the_same_records_one_per_line() -> None:
    records = _mixed_records(3000)
    records += [{"deploymentId": "", "ts": 1.0}, {"deploymentId": "d0", "ts": 1.0, "requests": "many"}, {"seq": 7}]
    items = decode_batch(encode_batch(records))
    blocks = [item for item in items if is_block(item)]
    assert len(items) < 40 and len(blocks) == len(items) - 3  # 3 deployments x 3-4 minutes, + the odd ones
    assert record_count(items) == len(records)
    as_lines = [orjson.loads(orjson.dumps(r)) for r in records]  # what a plain JSON-lines producer sends
    assert _aggregate(items) == _aggregate(as_lines)
    drained, scored, counted, invalid = _aggregate(items)
    assert counted == 3000 and invalid == 3  # the three odd ones, judged by the agent as before
    assert len(scored) == 2 * 750  # the association ids of the 750 records that had them, each once
    assert sum(a["requests"] for a in drained) == sum(r.get("requests", 0) for r in records[:3000])


def test_blocks_keep_association_ids_aligned_with_predictions() -> None:
    records = [
        data_record("d", "m", {"x": [1.0]}, ["a"], timestamp=60.0),
        data_record("d", "m", {"x": [2.0, 3.0]}, ["b", "c"], association_ids=["id-2", "id-3"], timestamp=61.0),
    ]
    (block,) = to_blocks(records)
    assert block["predictions"] == ["a", "b", "c"] and block["associationIds"] == [None, "id-2", "id-3"]
    assert block["features"] == {"x": [1.0, 2.0, 3.0]} and block["records"] == 2


def test_blocks_hold_at_most_block_records() -> None:
    records = [stats_record("d", "m", 1, 1.0, timestamp=60.0) for _ in range(BLOCK_RECORDS + 10)]
    assert [b["records"] for b in to_blocks(records)] == [BLOCK_RECORDS, 10]


def test_a_bad_block_counts_all_its_records_invalid_and_files_nothing() -> None:
    (good,) = to_blocks([stats_record("d", "m", 2, 1.0, timestamp=60.0) for _ in range(5)])
    for broken in (
        {**good, "requests": [1, 1, 1, 1, -1]},  # a negative count
        {**good, "rows": [2.5, 2, 2, 2, 2]},  # not an integer
        {**good, "userErrors": [0]},  # columns of different lengths
        {**good, MINUTE_START: 61},  # not a minute
        {**good, "features": {"x": 3.0}},  # a feature without its list
    ):
        aggregator = Aggregator()
        aggregator.add("s", broken)
        assert (aggregator.records, aggregator.invalid, aggregator.drain()) == (0, 5, [])
    aggregator = Aggregator()
    aggregator.add("s", good)
    (aggregate,) = aggregator.drain()
    assert (aggregate["requests"], aggregate["rows"], aggregator.records) == (5, 10, 5)


def test_numpy_feature_columns_fold_like_lists() -> None:
    record = {"deploymentId": "d", "modelId": None, "ts": 60.0, "features": {"x": np.array([1.5, 2.5])}}
    (block,) = decode_batch(encode_batch([record]))
    assert block["features"] == {"x": [1.5, 2.5]}


def test_vectorised_sketch_buckets_match_the_one_value_path() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [rng.lognormal(0, 2, 5000), -rng.lognormal(0, 3, 500), np.zeros(7), [1.0, -1.0, 1e-300, 1e300, np.nan, np.inf]]
    )
    one_by_one: sketch.Counts = {}
    for value in values:
        sketch.add_value(one_by_one, float(value))
    vectorised: sketch.Counts = {}
    assert sketch.add_values(vectorised, values) == 2  # nan and inf are not counted
    assert vectorised == one_by_one and "z" in vectorised and "p0" in vectorised and "n0" in vectorised


def test_blocks_are_per_model_and_shadow_flag_and_carry_the_comparison_sums() -> None:
    records: list[Record] = []
    for i in range(30):
        ts = 1_763_740_020.0 + i  # one minute
        records.append(stats_record("d", "champ", 1, 1.0, timestamp=ts))
        shadow = stats_record("d", "chall", 1, 2.0, timestamp=ts)
        shadow.update({"shadow": True, "comparedRows": 1, "agreedRows": i % 2, "absDiffSum": 0.5})
        records.append(shadow)
        records.append(stats_record("d", None, 1, 3.0, timestamp=ts))
    blocks = to_blocks(records)
    assert all(is_block(b) for b in blocks) and len(blocks) == 3
    by_model = {b["modelId"]: b for b in blocks}
    assert by_model["chall"]["shadow"] is True and "shadow" not in by_model["champ"]
    assert (by_model["chall"]["comparedRows"], by_model["chall"]["agreedRows"]) == (30, 15)
    assert by_model["chall"]["absDiffSum"] == 15.0 and "comparedRows" not in by_model["champ"]
    # and the agent makes of them what it makes of the records one per line
    assert _aggregate(decode_batch(encode_batch(records))) == _aggregate(records)
    challenger = next(a for a in _aggregate(blocks)[0] if a["modelId"] == "chall")
    assert (challenger["shadow"], challenger["comparedRows"], challenger["agreedRows"]) == (True, 30, 15)


def test_a_record_with_a_bad_shadow_flag_travels_unfolded() -> None:
    bad = {**stats_record("d", "m", 1, 1.0, timestamp=1_763_740_000.0), "shadow": 1}
    assert to_blocks([bad]) == [bad]
    assert _aggregate([bad])[2:] == (0, 1)

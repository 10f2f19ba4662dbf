"""RequestTally: each request counted once, handed whole to /metrics and monitoring."""

from __future__ import annotations

import threading

from deckhand.serving import tally as tally_module
from deckhand.serving.metrics import ServerMetrics
from deckhand.serving.tally import RequestTally, Tally

MINUTE = 60 * 29_395_000


def _collect(sink: list[Tally]):  # type: ignore[no-untyped-def]
    return lambda tallies: sink.extend(tallies)


def test_counts_split_by_deployment_model_and_minute() -> None:
    taken: list[Tally] = []
    tally = RequestTally(count_predictions=True)
    tally.add_sink(_collect(taken))
    tally.observe("a", "dep-a", "m1", MINUTE + 1, 200, 2, 0.01, None, ["x", "y"])
    tally.observe("a", "dep-a", "m1", MINUTE + 2, 422, 0, 0.002, "user", [])
    tally.observe("a", "dep-a", "m2", MINUTE + 2, 200, 1, 0.004, None, ["y"])  # a canary, or a replacement
    tally.observe("b", "dep-b", "m1", MINUTE + 3, 500, 1, 0.02, "system", [])
    tally.observe("a", "dep-a", "m2", MINUTE + 61, 200, 3, 0.03, None, ["x", "x", "z"])  # the next minute
    tally.drain()
    by = {(t.key, t.model_id, t.minute): t for t in taken}
    assert sorted(by) == [("a", "m1", MINUTE), ("a", "m2", MINUTE), ("a", "m2", MINUTE + 60), ("b", "m1", MINUTE)]
    first = by[("a", "m1", MINUTE)]
    assert first.statuses == {200: 1, 422: 1} and first.requests == 2 and first.rows == 2
    assert first.user_errors == 1 and first.system_errors == 0 and not first.shadow
    assert first.latencies == [0.01, 0.002] and first.predictions == {"x": 1, "y": 1}
    assert by[("a", "m2", MINUTE)].predictions == {"y": 1}
    assert by[("b", "m1", MINUTE)].system_errors == 1
    assert by[("a", "m2", MINUTE + 60)].predictions == {"x": 2, "z": 1}
    taken.clear()
    tally.drain()
    assert taken == []  # nothing is handed over twice


def test_shadow_counts_are_apart_and_left_out_of_metrics() -> None:
    taken: list[Tally] = []
    tally = RequestTally(count_predictions=True)
    metrics = ServerMetrics()
    tally.add_sink(_collect(taken))
    tally.add_sink(metrics.absorb)
    tally.observe("a", "dep-a", "champ", MINUTE, 200, 2, 0.01, None, ["x", "y"])
    tally.observe("a", "dep-a", "chal", MINUTE, 200, 2, 0.02, None, ["x", "x"], True, (2, 1, 0.0))
    tally.observe("a", "dep-a", "chal", MINUTE, 200, 1, 0.02, None, ["z"], True, (1, 0, 0.0))
    tally.drain()
    by = {(t.model_id, t.shadow): t for t in taken}
    assert sorted(by, key=str) == [("chal", True), ("champ", False)]
    shadow = by[("chal", True)]
    assert (shadow.requests, shadow.rows, shadow.compared_rows, shadow.agreed_rows) == (2, 3, 3, 1)
    assert shadow.predictions == {"x": 2, "z": 1}
    text = metrics.render(1, 0).decode()
    assert 'deckhand_prediction_requests_total{deployment="a",status="200"} 1.0' in text  # the client's one


def test_predictions_are_counted_only_when_asked() -> None:
    taken: list[Tally] = []
    tally = RequestTally()
    tally.add_sink(_collect(taken))
    tally.observe("a", "dep-a", "m", MINUTE, 200, 1, 0.01, None, ["x"])
    tally.drain()
    assert taken[0].predictions == {}


def test_a_full_tally_drains_itself(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With no /metrics scrape and no monitoring, latencies must not pile up."""
    monkeypatch.setattr(tally_module, "MAX_PENDING", 100)
    taken: list[Tally] = []
    tally = RequestTally()
    tally.add_sink(_collect(taken))
    for i in range(250):
        tally.observe("a", "dep-a", "m", MINUTE + i / 100, 200, 1, 0.001, None, [])
    assert sum(t.requests for t in taken) == 200 and all(len(t.latencies) <= 100 for t in taken)


def test_metrics_totals_equal_the_requests() -> None:
    metrics = ServerMetrics()
    tally = RequestTally()
    tally.add_sink(metrics.absorb)
    latencies = [0.0004, 0.0005, 0.003, 0.2, 20.0]  # 0.0005 is on a bound: "le" includes it
    for seconds in latencies:
        tally.observe("a", "dep-a", "m", MINUTE, 200, 2, seconds, None, [])
    tally.observe("a", "dep-a", "m", MINUTE, 404, 0, 0.001, "user", [])
    tally.drain()
    text = metrics.render(1, 0).decode()
    assert 'deckhand_prediction_requests_total{deployment="a",status="200"} 5.0' in text
    assert 'deckhand_prediction_requests_total{deployment="a",status="404"} 1.0' in text
    assert 'deckhand_prediction_rows_total{deployment="a"} 10.0' in text
    assert 'deckhand_prediction_latency_seconds_bucket{deployment="a",le="0.0005"} 2.0' in text
    assert 'deckhand_prediction_latency_seconds_bucket{deployment="a",le="0.001"} 3.0' in text
    assert 'deckhand_prediction_latency_seconds_bucket{deployment="a",le="10.0"} 5.0' in text
    assert 'deckhand_prediction_latency_seconds_bucket{deployment="a",le="+Inf"} 6.0' in text
    assert 'deckhand_prediction_latency_seconds_count{deployment="a"} 6.0' in text


def test_draining_from_another_thread_loses_nothing() -> None:
    """The monitoring reporter's thread drains while the event loop counts."""
    taken: list[Tally] = []
    tally = RequestTally(count_predictions=True)
    tally.add_sink(_collect(taken))
    stop = threading.Event()

    def drain_often() -> None:
        while not stop.is_set():
            tally.drain()

    drainer = threading.Thread(target=drain_often)
    drainer.start()
    for i in range(100_000):
        tally.observe("a", "dep-a", "m", MINUTE + i / 2000, 200, 1, 0.001, None, ["x"])
    stop.set()
    drainer.join()
    tally.drain()
    assert len(taken) > 10  # the drains really raced the counting
    assert sum(t.requests for t in taken) == 100_000
    assert sum(t.predictions.get("x", 0) for t in taken) == 100_000
    assert sum(len(t.latencies) for t in taken) == 100_000


def test_tallies_counted_in_another_process_are_absorbed_and_handed_on_with_the_next_drain() -> None:
    """The challengers' scorer tallies its own copies; the server absorbs the pickled tallies
    (without the predictions when nobody counts them) and drains them with its own."""
    import pickle

    scorer = RequestTally(count_predictions=True)
    sent: list[Tally] = []
    scorer.add_sink(_collect(sent))
    scorer.observe("a", "dep-a", "chal", MINUTE, 200, 2, 0.02, None, ["x", "x"], True, (2, 1, 0.0))
    scorer.observe("a", "dep-a", "chal", MINUTE + 1, 500, 1, 0.03, "system", [], True)
    scorer.drain()
    for count_predictions, expected in ((True, {"x": 2}), (False, {})):
        taken: list[Tally] = []
        server = RequestTally(count_predictions=count_predictions)
        server.add_sink(_collect(taken))
        server.absorb(pickle.loads(pickle.dumps(sent)))
        assert taken == []  # not before the next drain
        server.drain()
        (chal,) = taken
        assert (chal.model_id, chal.shadow, chal.requests, chal.rows, chal.system_errors) == ("chal", True, 2, 3, 1)
        assert (chal.compared_rows, chal.agreed_rows, chal.latencies) == (2, 1, [0.02, 0.03])
        assert chal.predictions == expected


def test_absorbed_tallies_are_drained_when_enough_wait(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tally_module, "MAX_PENDING", 3)
    taken: list[Tally] = []
    server = RequestTally()
    server.add_sink(_collect(taken))
    chal = Tally("a", "dep-a", "chal", MINUTE, True)
    chal.latencies = [0.01, 0.02, 0.03]
    server.absorb([chal])
    assert taken == [chal]  # memory stays bounded with no scrapes and no monitoring

"""`deckhand serve` on a mix (docs/rollouts.md): canary split, sticky routing, a failing
canary covered by the champion, challengers scored off the request path, and swaps that
reuse loaded members. Real `deckhand serve` processes, monitoring to a spool directory."""

from __future__ import annotations

import collections
import contextlib
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.hook_packages import iris_hook_package

from deckhand import deployment_dirs
from deckhand.monitoring.records import decode_batch
from deckhand.packages import Batch, file_sha256
from deckhand.packages.demo import sample_rows
from deckhand.packages.mix import MixMember, write_mix
from deckhand.serving.mixes import MixRouting, bucket
from deckhand.serving.shadow import ShadowScorer, _Wire, compare
from deckhand.serving.testing import ServeProcess
from deckhand.testing import wait_until

HEADER = "x-deckhand-model-id"
CHALLENGERS = ("chal-1", "chal-2", "chal-3")


def _mix(  # type: ignore[no-untyped-def]
    path: Path,
    champion: Path,
    canary: Path | None,
    percent: int,
    challenger: Path | None,
    sticky=None,
    copy_percent: float = 100.0,
) -> Path:
    members = [MixMember("champ", "champion", 100 - percent, file_sha256(champion), champion)]
    if canary is not None:
        members.append(MixMember("canary", "canary", percent, file_sha256(canary), canary))
    if challenger is not None:
        members += [MixMember(c, "challenger", 0, file_sha256(challenger), challenger) for c in CHALLENGERS]
    write_mix(path, f"mix-{percent}", members, sticky, copy_percent=copy_percent)
    return path


def _spooled(spool: Path) -> list[dict[str, Any]]:
    return [r for f in sorted(spool.glob("*.jsonl")) for r in decode_batch(f.read_bytes())]


def _model_stats(spool: Path) -> dict[tuple[str, bool], dict[str, int]]:
    """Per (model id, shadow): requests, errors and compared/agreed rows the server reported."""
    out: dict[tuple[str, bool], dict[str, int]] = collections.defaultdict(collections.Counter)  # type: ignore[arg-type]
    for record in _spooled(spool):
        if "requests" in record:
            counts = out[(record["modelId"], bool(record.get("shadow")))]
            for key in ("requests", "systemErrors", "comparedRows", "agreedRows"):
                counts[key] += record.get(key, 0)
    return out


def _scorer_read_here(send_buffer: int | None = None, **kwargs: Any) -> tuple[ShadowScorer, socket.socket]:
    """A ShadowScorer whose copies' socket is read by the test (the scorer process's end,
    non-blocking), not by a scorer process; `send_buffer` is what the server's end asks for."""
    scorer = ShadowScorer(lambda tallies: None, **kwargs)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if send_buffer is not None:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        ours.setblocking(False)
    scorer._copies = ours
    theirs.setblocking(False)
    return scorer, theirs


def _datagrams(theirs: socket.socket) -> list[bytes]:
    """Every datagram waiting for the scorer."""
    datagrams = []
    with contextlib.suppress(BlockingIOError):
        while True:
            datagrams.append(theirs.recv(1 << 22))
    return datagrams


def _short_petals(n: int) -> list[dict[str, float]]:
    rows = [r for r in sample_rows(n * 3, seed=3) if r["petal_length"] <= 5.0]
    return rows[:n]


def test_canary_split_failures_and_challengers(
    demo_package: Path, flaky_package: Path, second_package: Path, tmp_path: Path
) -> None:
    mix = _mix(tmp_path / "mix.dhpkg", demo_package, flaky_package, 20, second_package)
    spool = tmp_path / "spool"
    server = ServeProcess(
        ["--package", str(mix), "--model-id", "mix-20"],
        tmp_path / "serve.log",
        env={"DECKHAND_MONITORING": f"spool:{spool}", "DECKHAND_CACHE_DIR": str(tmp_path / "cache")},
    )
    with server, httpx.Client(timeout=20) as client:
        server.wait_ready()
        url = f"{server.url}/predictions"
        # the split: 2,000 requests at 20 % (the flaky canary answers rows with short petals)
        rows = _short_petals(50)
        answered = collections.Counter()
        for i in range(2000):
            response = client.post(url, json=[rows[i % len(rows)]])
            assert response.status_code == 200, response.text
            answered[response.headers[HEADER]] += 1
        assert set(answered) == {"champ", "canary"}
        assert 300 <= answered["canary"] <= 500, answered

        # a canary failing on long petals: the champion answers every one of them
        long_row = {"sepal_length": 6.5, "sepal_width": 3.0, "petal_length": 6.0, "petal_width": 2.0}
        failed = 0
        for _ in range(200):
            response = client.post(url, json=[long_row])
            failed += response.status_code != 200
            assert response.headers[HEADER] == "champ"
        assert failed == 0

        # the Open Inference Protocol routes the same way and names the model too
        v2 = client.post(
            f"{server.url}/v2/models/default/infer",
            json={"inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in rows[0].items()]},
        )
        assert v2.status_code == 200 and v2.headers[HEADER] in ("champ", "canary")

        # challengers got copies of what the champion answered, and never answered a client
        def copies_scored() -> bool:  # the last copies cross by the flush timer (shadow.LAST_FLUSH_S)
            counts = client.get(f"{server.url}/info").json()["mix"]["shadow"]
            return counts["scored"] > 100 and counts["sent"] + counts["dropped"] >= 1600

        wait_until(copies_scored, 60, 0.2, what="the challengers to score copies")
        info = client.get(f"{server.url}/info").json()
        assert info["modelId"] == "mix-20"
        assert [(m["modelId"], m["role"], m["percent"]) for m in info["mix"]["members"]] == [
            ("champ", "champion", 80),
            ("canary", "canary", 20),
            *[(c, "challenger", 0) for c in CHALLENGERS],
        ]
        shadow = info["mix"]["shadow"]
        assert shadow["sent"] >= shadow["scored"] > 100 and shadow["sent"] + shadow["dropped"] >= 1600

        # monitoring: per model, the canary's failures as shadow records, challengers compared
        def reported() -> dict[tuple[str, bool], dict[str, int]]:
            stats = _model_stats(spool)
            assert stats[("canary", True)]["systemErrors"] >= 15  # about 20 % of the 200 went to the canary
            assert all(stats[(c, True)]["comparedRows"] > 100 for c in CHALLENGERS)
            return stats

        wait_until(lambda: bool(reported()), 30, 0.2, what="per-model records in the spool")
    stats = _model_stats(spool)
    assert stats[("champ", False)]["systemErrors"] == 0 and stats[("canary", False)]["systemErrors"] == 0
    assert stats[("champ", False)]["requests"] + stats[("canary", False)]["requests"] == 2201
    failures = stats[("canary", True)]
    assert failures["requests"] == failures["systemErrors"] and 15 <= failures["systemErrors"] <= 80
    for c in CHALLENGERS:  # iris-v2 mostly agrees with the demo model
        assert 0.7 <= stats[(c, True)]["agreedRows"] / stats[(c, True)]["comparedRows"] <= 1.0


def test_sticky_routing_and_swaps_that_reuse_members(demo_package: Path, second_package: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    sticky = {"header": "x-customer-id"}
    first = _mix(tmp_path / "mix-10.dhpkg", demo_package, second_package, 10, None, sticky)
    deployment_dirs.install(models, "d1", "d1", "mix-10", first)
    server = ServeProcess(
        ["--models-dir", str(models), "--poll-interval", "0.1"],
        tmp_path / "serve.log",
        env={"DECKHAND_MONITORING": "off", "DECKHAND_CACHE_DIR": str(tmp_path / "cache")},
    )
    row = sample_rows(1)
    customers = [f"customer-{i}" for i in range(200)]
    with server, httpx.Client(timeout=20) as client:
        server.wait_ready()
        url = f"{server.url}/deployments/d1/predictions"

        def models_met() -> dict[str, set[str]]:
            met: dict[str, set[str]] = collections.defaultdict(set)
            for customer in customers:
                for _ in range(3):
                    response = client.post(url, json=row, headers={"x-customer-id": customer})
                    met[customer].add(response.headers[HEADER])
            return met

        at_10 = models_met()
        assert all(len(seen) == 1 for seen in at_10.values())  # an entity always meets the same model
        assert {c for c, seen in at_10.items() if seen == {"canary"}} == {c for c in customers if bucket(c) < 10}
        unkeyed = collections.Counter(client.post(url, json=row).headers[HEADER] for _ in range(300))
        assert unkeyed["champ"] > unkeyed["canary"] > 0  # no key: a random draw at 10 %

        before = client.get(f"{server.url}/deployments/d1").json()
        second = _mix(tmp_path / "mix-20.dhpkg", demo_package, second_package, 20, None, sticky)
        deployment_dirs.install(models, "d1", "d1", "mix-20", second)
        wait_until(
            lambda: client.get(f"{server.url}/deployments/d1").json()["modelId"] == "mix-20", 10, 0.05, what="the swap"
        )
        after = client.get(f"{server.url}/deployments/d1").json()
        # members unchanged but the share: nothing loaded again, and the swap takes milliseconds
        assert [m["loadedAt"] for m in after["mix"]["members"]] == [m["loadedAt"] for m in before["mix"]["members"]]
        assert after["loadedAt"] > before["loadedAt"] and after["loadSeconds"] < 1.0
        at_20 = models_met()
        on_canary_at_10 = {c for c, seen in at_10.items() if seen == {"canary"}}
        assert on_canary_at_10 <= {c for c, seen in at_20.items() if seen == {"canary"}}  # stays on it
        assert {c for c, seen in at_20.items() if seen == {"canary"}} == {c for c in customers if bucket(c) < 20}

        # promoted: the canary's package alone, served without loading it again
        deployment_dirs.install(models, "d1", "d1", "model-b", second_package)
        wait_until(
            lambda: client.get(f"{server.url}/deployments/d1").json()["modelId"] == "model-b",
            10,
            0.05,
            what="promotion",
        )
        promoted = client.get(f"{server.url}/deployments/d1").json()
        assert promoted["loadedAt"] == after["mix"]["members"][1]["loadedAt"] and "mix" not in promoted
        assert client.post(url, json=row).headers[HEADER] == "model-b"


def test_sticky_field_reads_the_first_row_in_every_batch_form() -> None:
    routing = MixRouting("mix-x", "champ", "canary", 50, (), {"field": "customer"})  # type: ignore[arg-type]
    columns = ["customer", "x"]
    forms = [
        Batch(columns=columns, array=np.array([[42.0, 1.0]])),
        Batch(columns=columns, rows=[[42, 1.0]]),
        Batch(columns=columns, rows=[["42", 1.0]]),
    ]
    assert {routing.sticky_value([], batch) for batch in forms} == {"42"}
    assert routing.route([], forms[0]) == ("canary" if bucket("42") < 50 else "champ")
    assert routing.sticky_value([], Batch(columns=["x"], rows=[[1.0]])) is None  # no key: a random draw


@pytest.mark.parametrize(
    ("champion", "challenger", "regression", "expected"),
    [
        (["a", "b", "c"], ["a", "c", "c"], False, (3, 2, 0.0)),
        ([100.0, 10.0, 0.0], np.array([100.5, 12.0, 0.0]), True, (3, 2, 2.5)),
    ],
)
def test_challenger_answers_are_compared_with_the_champions(champion, challenger, regression, expected) -> None:  # type: ignore[no-untyped-def]
    assert compare(champion, challenger, regression) == expected


def test_a_flush_carries_every_waiting_copy_in_order_whatever_its_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies wait in the server and cross to the scorer once per flush: a numeric group (rows
    and the champion's values, as an array or the list of floats a regression's response was
    encoded from) as its arrays, defined once per scorer; copies in other forms (rows, labels,
    association ids) pickled together in one datagram, in order. Other deployments and columns
    form their own groups."""
    import asyncio

    from deckhand.serving import shadow

    monkeypatch.setattr(shadow, "FLUSH_S", 60.0)  # however slow this machine, only the timer flushes
    columns = ["a", "b"]
    challengers = (("c1", "/nowhere"),)
    numeric = [np.array([[float(i), float(-i)]] * (i + 1)) for i in range(70)]  # grows the arrays past 64 rows
    scorer, theirs = _scorer_read_here()

    def submit(key: str, rows: np.ndarray, champion: object, ids: list[str] | None = None, names=columns) -> None:  # type: ignore[no-untyped-def]
        scorer.submit(key, key, challengers, Batch(columns=names, array=rows), champion, ids)

    async def requests() -> None:
        for i, rows in enumerate(numeric[:40]):
            submit("d", rows, rows[:, 0].copy(), [f"id{i}"] * len(rows))
        scorer.submit("d", "d", challengers, Batch(columns=columns, rows=[[1, "x"]]), ["label"])  # another form
        for rows in numeric[40:]:
            submit("d", rows, rows[:, 0].copy())
        submit("e", np.zeros((2, 1)), np.zeros(2), names=["z"])
        for i, rows in enumerate(numeric[:3]):  # a regression's answers as the response had them
            submit("f", rows, rows[:, 0].tolist(), [f"f{i}"] * len(rows) if i == 1 else None)
        await asyncio.sleep(2 * shadow.LAST_FLUSH_S)  # the flush timer fires once, for all of them
        submit("e", np.ones((1, 1)), np.ones(1), names=["z"])
        await asyncio.sleep(2 * shadow.LAST_FLUSH_S)

    asyncio.run(requests())
    datagrams = _datagrams(theirs)
    scorer.close()
    # numeric groups defined once each, then their arrays; the rest pickled together
    assert [m[:1] for m in datagrams] == [_Wire.DEFINE, _Wire.ARRAYS] * 2 + [_Wire.GROUPS, _Wire.ARRAYS]
    wire = _Wire()
    (e, f, d, e2) = [g for m in datagrams for g in wire.decode(memoryview(m))]
    assert scorer.counts("d") == {"sent": 71, "scored": 0, "dropped": 0, "shed": 0, "passedOver": 0}
    assert (scorer.counts("e")["sent"], scorer.counts("f")["sent"]) == (2, 3)
    assert d.sizes == tuple(len(r) for r in numeric[:40]) + (1,) + tuple(len(r) for r in numeric[40:])
    assert (e.sizes, e.batch.columns, e.batch.array.tolist(), e.champion.tolist()) == (
        (2,),
        ["z"],
        [[0.0]] * 2,
        [0.0] * 2,
    )
    assert (e2.key, e2.sizes, e2.batch.array.tolist(), e2.champion.tolist()) == ("e", (1,), [[1.0]], [1.0])
    assert f.sizes == (1, 2, 3) and f.champion.dtype == np.float64 and f.ids == (None, ["f1", "f1"], None)
    assert e.ids is None
    for group, sent in ((d, numeric[:40] + numeric[40:]), (f, numeric[:3])):
        copies = group.copies()
        if group is d:
            assert (copies[40].batch.to_array(object).tolist(), list(copies[40].champion)) == ([[1, "x"]], ["label"])
            assert [c.ids for c in copies[:2]] == [["id0"], ["id1", "id1"]] and copies[41].ids is None
            copies = copies[:40] + copies[41:]
        for copy, rows in zip(copies, sent, strict=True):
            assert copy.batch.to_array().tolist() == rows.tolist()
            assert list(copy.champion) == rows[:, 0].tolist()


def test_numbered_groups_are_bounded_and_the_rest_still_cross(monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns come from clients: past MAX_NUMBERED numeric groups per scorer, a new group's
    copies are pickled instead of numbered (the server's and the scorer's tables stay bounded)."""
    monkeypatch.setattr(_Wire, "MAX_NUMBERED", 1)
    scorer, theirs = _scorer_read_here()
    for name in ("x", "y"):
        scorer.submit("d", "d", (("c1", "/nowhere"),), Batch(columns=[name], array=np.ones((1, 1))), np.ones(1))
    scorer.flush()
    datagrams = _datagrams(theirs)
    scorer.close()
    assert [m[:1] for m in datagrams] == [_Wire.DEFINE, _Wire.ARRAYS, _Wire.GROUPS]
    wire = _Wire()
    groups = [g for m in datagrams for g in wire.decode(memoryview(m))]
    assert [(g.batch.columns, g.sizes) for g in groups] == [(["x"], (1,)), (["y"], (1,))]
    assert scorer.counts("d") == {"sent": 2, "scored": 0, "dropped": 0, "shed": 0, "passedOver": 0}


def test_copies_fit_the_socket_buffer_the_kernel_gives() -> None:
    """SO_SNDBUF is capped by net.core.wmem_max (208 KiB on many hosts), and a datagram larger
    than the buffer cannot be sent at all: flushes are sized to half the buffer the kernel
    gave, so a large copy neither fails nor takes the small copies waiting with it; a copy
    larger than that is dropped alone, counted."""
    import asyncio

    from deckhand.serving.shadow import LAST_FLUSH_S

    buffer = 64 * 1024
    scorer, theirs = _scorer_read_here(send_buffer=buffer, queue_bytes=buffer)  # as the scorer's own socket asks
    wire, received = _Wire(), []
    columns = [f"x{i}" for i in range(10)]
    sizes = [1, 300, 1, 1000, 1, 300, 1]  # 1,000 rows x 10 columns: 88,000 bytes, more than the half

    async def requests() -> None:
        for n in sizes:
            rows = np.full((n, 10), float(n))
            scorer.submit("d", "d", (("c1", "/nowhere"),), Batch(columns=columns, array=rows), rows[:, 0].copy())
            await asyncio.sleep(0)
            received.extend(g for m in _datagrams(theirs) for g in wire.decode(memoryview(m)))  # read as sent
        await asyncio.sleep(2 * LAST_FLUSH_S)

    asyncio.run(requests())
    received.extend(g for m in _datagrams(theirs) for g in wire.decode(memoryview(m)))
    scorer.close()
    assert [n for g in received for n in g.sizes] == [1, 300, 1, 1, 300, 1]
    assert scorer.counts("d") == {"sent": 6, "scored": 0, "dropped": 1, "shed": 0, "passedOver": 0}


def test_copies_cross_between_requests_once_due_not_by_the_timer() -> None:
    """The first copy FLUSH_S after the first one waiting takes them all across, there and
    then: just after a response, not when a timer fires in the middle of a request. The timer
    only sends what waits when no more copies come."""
    import asyncio

    from deckhand.serving.shadow import FLUSH_S, LAST_FLUSH_S

    scorer, theirs = _scorer_read_here()
    wire = _Wire()

    def copy() -> None:
        scorer.submit("d", "d", (("c1", "/nowhere"),), Batch(columns=["x"], array=np.ones((1, 1))), np.ones(1))

    def received() -> list[int]:
        return [len(g.sizes) for m in _datagrams(theirs) for g in wire.decode(memoryview(m))]

    async def requests() -> tuple[list[int], list[int], list[int]]:
        copy()
        copy()
        waiting = received()
        await asyncio.sleep(FLUSH_S * 1.5)  # due, but well before the timer
        copy()
        at_the_copy = received()
        copy()
        await asyncio.sleep(2 * LAST_FLUSH_S)
        return waiting, at_the_copy, received()

    assert LAST_FLUSH_S >= 2.5 * FLUSH_S  # the sleep of 1.5 x FLUSH_S ends well before the timer
    waiting, at_the_copy, by_the_timer = asyncio.run(requests())
    scorer.close()
    assert (waiting, at_the_copy, by_the_timer) == ([], [3], [1])


SLOW_HOOK = """\
import time

import numpy as np


def score(data, model, **kwargs):
    time.sleep(0.002 * len(data))  # 2 ms a row: a large request keeps the model busy for seconds
    return np.tile([0.2, 0.5, 0.3], (len(data), 1))
"""


@pytest.fixture(scope="module")
def slow_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return iris_hook_package(tmp_path_factory.mktemp("slow"), SLOW_HOOK)


@pytest.mark.parametrize("copies", ["idle", "all"])
def test_copies_yield_to_requests_waiting_for_a_model(
    copies: str, slow_package: Path, second_package: Path, tmp_path: Path
) -> None:
    """`--shadow-copies idle` (the default): a request answered while others wait for a model
    is not copied (shed, counted), so on a busy server the challengers' work never comes out
    of the champion's; one client at a time is copied every time. `all` copies every request."""
    import threading

    mix = _mix(tmp_path / "mix.dhpkg", slow_package, None, 0, second_package)
    server = ServeProcess(
        ["--package", str(mix), "--shadow-copies", copies],
        tmp_path / "serve.log",
        env={"DECKHAND_MONITORING": "off", "DECKHAND_CACHE_DIR": str(tmp_path / "cache")},
    )
    row = sample_rows(1)
    with server, httpx.Client(timeout=30) as client:
        server.wait_ready()
        url = f"{server.url}/predictions"

        def shadow() -> dict[str, int]:
            return client.get(f"{server.url}/info").json()["mix"]["shadow"]

        def counted() -> int:  # every copy is counted one way or another
            counts = shadow()
            return counts["sent"] + counts["dropped"] + counts["shed"]

        for _ in range(20):  # one client: nothing else waits
            assert client.post(url, json=row).status_code == 200
        wait_until(lambda: counted() == 20, 10, 0.05, what="20 copies counted")
        assert shadow()["shed"] == 0

        # 20 small requests answered while a 1,500-row one (3 s, in a worker thread) waits for the model
        large: list[int] = []
        waiting = threading.Thread(
            target=lambda: large.append(httpx.post(url, json=sample_rows(1500), timeout=30).status_code)
        )
        waiting.start()
        time.sleep(0.5)
        small = [client.post(url, json=row).status_code for _ in range(20)]
        waiting.join()
        assert small == [200] * 20 and large == [200]
        wait_until(lambda: counted() == 41, 10, 0.05, what="41 copies counted")
        counts = shadow()
    if copies == "idle":
        assert (counts["shed"], counts["sent"] + counts["dropped"]) == (20, 21), counts
    else:
        assert (counts["shed"], counts["sent"] + counts["dropped"]) == (0, 41), counts


def test_a_copy_share_copies_that_share_of_the_requests(
    demo_package: Path, second_package: Path, tmp_path: Path
) -> None:
    """A mix with challengerCopyPercent 25: about a quarter of the champion's requests reach the
    challengers (sent, scored, compared in monitoring), the rest are counted as passed over."""
    mix = _mix(tmp_path / "mix.dhpkg", demo_package, None, 0, second_package, copy_percent=25)
    spool = tmp_path / "spool"
    server = ServeProcess(
        ["--package", str(mix), "--model-id", "mix-25"],
        tmp_path / "serve.log",
        env={"DECKHAND_MONITORING": f"spool:{spool}", "DECKHAND_CACHE_DIR": str(tmp_path / "cache")},
    )
    requests = 1000
    with server, httpx.Client(timeout=20) as client:
        server.wait_ready()
        rows = sample_rows(1)
        for _ in range(requests):
            response = client.post(f"{server.url}/predictions", json=rows)
            assert response.status_code == 200 and response.headers[HEADER] == "champ", response.text

        def shadow() -> dict[str, int]:
            return client.get(f"{server.url}/info").json()["mix"]["shadow"]

        def settled() -> bool:  # every request counted, and every copy sent scored
            c = shadow()
            return c["sent"] + c["dropped"] + c["shed"] + c["passedOver"] == requests and c["scored"] == c["sent"]

        wait_until(settled, 30, 0.2, what="every request counted and every copy scored")
        info = client.get(f"{server.url}/info").json()["mix"]
        counts = info["shadow"]
        # 1,000 draws at 25 %: 250 copies, standard deviation 13.7; 5 of them either side
        assert info["challengerCopyPercent"] == 25.0
        assert counts["dropped"] == counts["shed"] == 0, counts
        assert 180 <= counts["sent"] <= 320, counts
        assert counts["passedOver"] == requests - counts["sent"]

        def compared() -> dict[tuple[str, bool], dict[str, int]]:
            stats = _model_stats(spool)
            assert all(stats[(c, True)]["comparedRows"] == counts["sent"] for c in CHALLENGERS), stats
            return stats

        wait_until(lambda: bool(compared()), 30, 0.2, what="the challengers' compared rows in the spool")
    assert _model_stats(spool)[("champ", False)]["requests"] == requests


def test_a_share_only_swap_reuses_both_members(demo_package: Path, second_package: Path, tmp_path: Path) -> None:
    """The repository alone: a 10 % -> 20 % swap reuses both loaded members (its time: bench/rollouts.py)."""
    from deckhand.serving.repository import ModelRepository

    repository = ModelRepository()
    entry = repository.entry("d", "d")
    assert repository.load_into(entry, _mix(tmp_path / "a.dhpkg", demo_package, second_package, 10, None), None)
    first = entry.current
    assert repository.load_into(entry, _mix(tmp_path / "b.dhpkg", demo_package, second_package, 20, None), None)
    assert first is not None and first.mix is not None and entry.current is not None and entry.current.mix is not None
    assert entry.current.mix.champion.model is first.mix.champion.model
    assert entry.current.mix.canary.model is first.mix.canary.model  # type: ignore[union-attr]
    assert entry.current.mix.percent == 20


def test_waiting_copies_are_scored_in_one_call_per_challenger_and_failures_stay_with_their_copies(
    demo_package: Path, flaky_package: Path
) -> None:
    """The scorer's batching (in-process): five copies for two challengers are two predict()
    calls per healthy challenger, each copy gets its own rows' answers (the same as scoring it
    alone), and a challenger that raises on some rows fails only the copies holding them."""
    from collections import OrderedDict

    from deckhand.package_limits import PackageLimits
    from deckhand.packages import load_model
    from deckhand.serving.codecs import prediction_labels
    from deckhand.serving.shadow import CopyGroup, ShadowCopy, score_copies

    champion = load_model(demo_package)
    columns = [f.name for f in champion.manifest.features]
    rows = sample_rows(40, seed=3)
    chunks = [rows[i : i + 8] for i in range(0, 40, 8)]
    copies = []
    for i, chunk in enumerate(chunks):
        batch = Batch(columns=columns, rows=[[r[c] for c in columns] for r in chunk])
        answers = prediction_labels(champion.predict(batch), champion.manifest)
        copies.append(
            ShadowCopy("d", "d", (("same", str(demo_package)), ("flaky", str(flaky_package))), batch, answers, float(i))
        )
    models: OrderedDict[str, Any] = OrderedDict()
    calls: collections.Counter[str] = collections.Counter()
    # two flushes of the same deployment waiting together: merged into one group
    flushes = [CopyGroup.join(copies[:2]), CopyGroup.join(copies[2:])]
    scored = score_copies(models, [g for f in flushes for g in f], PackageLimits())
    for path, model in models.items():  # count the calls of a second round
        model.predict = lambda batch, _p=model.predict, _k=path: calls.update([_k]) or _p(batch)
    score_copies(models, CopyGroup.join(copies), PackageLimits())

    ((group, results),) = scored  # one deployment, the same challengers and columns: one group
    assert group.sizes == (8,) * 5 and group.timestamp == copies[0].timestamp
    assert [(c.batch, c.champion) for c in group.copies()] == [(c.batch, c.champion) for c in copies]
    same = [r for r in results if r.model_id == "same"]
    flaky = [r for r in results if r.model_id == "flaky"]
    # the healthy challenger: one result for the five copies, its answers the champion's
    assert [(r.copies, r.rows, r.status, r.compared, r.agreed) for r in same] == [(5, 40, 200, 40, 40)]
    # the flaky one failed the group call, then was scored copy by copy: only the copies
    # holding a row it raises on are its failures
    assert [r.copies for r in flaky] == [1] * 5
    for r, chunk in zip(flaky, chunks, strict=True):
        raising = any(row["petal_length"] > 5.0 for row in chunk)
        assert (r.status, r.error) == ((500, "system") if raising else (200, None)), chunk
    assert {r.status for r in flaky} == {200, 500}
    # one call for the healthy challenger; the flaky one: one failed call, then copy by copy
    assert calls == {str(demo_package): 1, str(flaky_package): 1 + 5}, calls

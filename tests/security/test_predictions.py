"""Prediction requests are bounded and malformed ones are the client's error: every shape
below is a 4xx that names what is wrong, a ragged CSV fails the same way at any size,
booleans are not numbers, and a request of a million rows is answered in memory a small
multiple of its body while /ping keeps answering."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.serving.conftest import running_server

from deckhand.serving.codecs import LARGE_BODY
from deckhand.serving.config import ServeConfig
from deckhand.serving.testing import ServeProcess
from deckhand.testing import peak_rss_mib, reset_peak_rss, rss_mib

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROW = dict(zip(FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))


@pytest.fixture(scope="module")
def url(demo_package: Path) -> Iterator[str]:
    with running_server(ServeConfig(package=demo_package, max_rows=50_000)) as (base, _app):
        yield base


def _post(url: str, body: bytes, ctype: str = "application/json") -> httpx.Response:
    return httpx.post(f"{url}/predictions", content=body, headers={"content-type": ctype}, timeout=60)


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        # a value that is a list, an object or a boolean: named, not a model or server error
        (
            b'[{"sepal_length": [1, 2], "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]',
            400,
            ["row 0, feature 'sepal_length'", "JSON array"],
        ),
        (
            b'[{"sepal_length": {"a": 1}, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]',
            400,
            ["row 0, feature 'sepal_length'", "JSON object"],
        ),
        (
            b'[{"sepal_length": true, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]',
            400,
            ["row 0, feature 'sepal_length'", "boolean"],
        ),
        (
            b'{"data": [{"sepal_length": 1, "sepal_width": false, "petal_length": 1.4, "petal_width": 0.2}]}',
            400,
            ["row 0, feature 'sepal_width'", "boolean"],
        ),
        # pandas' split form with data that is not rows, columns that are not names
        (
            b'{"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"], "data": [1, 2]}',
            400,
            ['"data" row 0', "a JSON number"],
        ),
        (b'{"columns": 5, "data": [[1]]}', 400, ['"columns" must be a list of feature names']),
        (
            b'{"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"], "data": [[1, 2, 3, true]]}',
            400,
            ["row 0, feature 'petal_width'", "boolean"],
        ),
        (b'[{"sepal_length": 1, "sepal_width": 2, "petal_length": 3, "petal_width": 4}, 7]', 400, ["row 1"]),
        (b'{"data": 5}', 400, ["JSON input must be"]),
        (
            b'[{"sepal_length": "wide", "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]',
            422,
            ["row 0, feature 'sepal_length': 'wide' is not a number"],
        ),
    ],
)
def test_malformed_json_is_a_4xx_naming_the_field(url: str, body: bytes, status: int, names: list[str]) -> None:
    response = _post(url, body)
    assert response.status_code == status, response.text
    for name in names:
        assert name in response.json()["message"]


def _csv(rows: int, ragged_line: int | None = None) -> bytes:
    lines = [",".join(FEATURES)] + ["5.1,3.5,1.4,0.2"] * rows
    if ragged_line is not None:
        lines[ragged_line - 1] = "5.1,3.5,1.4"
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("rows", [10, 40_000], ids=["small", "large"])
def test_ragged_csv_is_the_same_400_at_any_size(url: str, rows: int) -> None:
    body = _csv(rows, ragged_line=7)
    assert (len(body) > LARGE_BODY) == (rows > 10)  # the large body takes the pandas path
    response = _post(url, body, "text/csv")
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "CSV line 7 has 3 fields, the header has 4"
    quoted = body.replace(b"5.1,3.5,1.4,0.2\n", b'"5.1",3.5,1.4,0.2\n', 1)  # the csv module's reading
    assert _post(url, quoted, "text/csv").json()["message"] == "CSV line 7 has 3 fields, the header has 4"


def test_rows_over_the_limit_are_a_413_naming_the_flag(url: str) -> None:
    for body, ctype in ((_csv(50_001), "text/csv"), (httpx.Request("POST", "/", json=[ROW] * 50_001).read(), "")):
        response = _post(url, body, ctype or "application/json")
        assert response.status_code == 413, response.text
        assert (
            response.json()["message"] == "the request has 50001 rows, over the limit of 50000 (--max-rows); split it"
        )
    assert _post(url, _csv(50_000), "text/csv").status_code == 200


def test_large_requests_stream_the_same_answer(url: str) -> None:
    """Over stream_chunk_rows a request is scored and written in chunks: the same rows."""
    rows = [dict(zip(FEATURES, r, strict=True)) for r in np.random.default_rng(0).normal(4, 2, (25_000, 4)).tolist()]
    streamed = httpx.post(f"{url}/predictions", json=rows, timeout=60)
    assert streamed.status_code == 200 and "content-length" not in streamed.headers
    data = streamed.json()["data"]
    assert [row["rowId"] for row in data] == list(range(25_000))
    for start in (0, 9_999, 10_000, 24_999):  # chunk edges answer as the same rows sent alone
        alone = httpx.post(f"{url}/predictions", json=rows[start : start + 1]).json()["data"][0]
        assert alone["prediction"] == data[start]["prediction"]
        values = [[v["value"] for v in row["predictionValues"]] for row in (alone, data[start])]
        assert np.allclose(*values, rtol=1e-9, atol=1e-15)  # a batch of one may round differently
    as_csv = httpx.post(f"{url}/predictions", json=rows, headers={"accept": "text/csv"}, timeout=60)
    lines = as_csv.text.splitlines()
    assert len(lines) == 25_001 and lines[0].startswith("rowId,prediction") and lines[-1].startswith("24999,")


@pytest.mark.slow
def test_a_million_rows_in_bounded_memory_while_ping_answers(tmp_path: Path, demo_package: Path) -> None:
    """A 1,000,000-row CSV (about 20 MB) to a real `deckhand serve`: the peak memory above
    idle stays under 10x the body, and /ping's p99 stays under 100 ms while it runs."""
    package = demo_package
    values = np.random.default_rng(0).normal(5, 2, size=(1_000_000, 4)).round(2)
    body = (",".join(FEATURES) + "\n" + "\n".join(",".join(map(str, r)) for r in values.tolist()) + "\n").encode()
    del values
    with ServeProcess(["--package", str(package)], tmp_path / "serve.log") as server:
        server.wait_ready()
        assert _post(server.url, _csv(5), "text/csv").status_code == 200
        idle = rss_mib(server.pid)
        reset_peak_rss(server.pid)
        pings: list[float] = []
        done = threading.Event()

        def ping() -> None:
            with httpx.Client(base_url=server.url) as client:
                while not done.is_set():
                    started = time.perf_counter()
                    assert client.get("/ping").status_code == 200
                    pings.append(time.perf_counter() - started)
                    time.sleep(0.01)  # the pinger's pace, not a wait for anything

        pinger = threading.Thread(target=ping)
        pinger.start()
        started = time.perf_counter()
        answered = 0
        try:
            with httpx.stream(
                "POST", f"{server.url}/predictions", content=body, headers={"content-type": "text/csv"}, timeout=120
            ) as response:
                assert response.status_code == 200
                tail = b""
                for chunk in response.iter_bytes():  # counted as it arrives: the test holds no 200 MB
                    answered += (tail + chunk).count(b'"rowId":')
                    tail = chunk[-7:]  # a marker cut in two is counted once, with the next chunk
        finally:
            done.set()
            pinger.join()
        seconds = time.perf_counter() - started
        peak = peak_rss_mib(server.pid)
    pings.sort()
    p99 = pings[int(len(pings) * 0.99)] * 1000
    ratio = (peak - idle) * 2**20 / len(body)
    print(
        f"\n1M-row CSV: {len(body) / 2**20:.1f} MiB in {seconds:.1f} s; idle {idle:.0f} MiB, peak {peak:.0f} MiB "
        f"(+{peak - idle:.0f} = {ratio:.1f}x the body); /ping p50 {pings[len(pings) // 2] * 1000:.1f} ms, "
        f"p99 {p99:.1f} ms, max {pings[-1] * 1000:.1f} ms over {len(pings)} pings"
    )
    assert answered == 1_000_000
    assert ratio <= 10
    assert p99 < 100

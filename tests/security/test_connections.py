"""Both servers bound every connection: headers and bodies have a deadline, headers a size,
and open connections a cap at which idle ones make room. Driven with raw sockets against
real `deckhand serve` and `deckhand server` processes, as a hostile client would."""

from __future__ import annotations

import secrets
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deckhand.listener import raise_open_files_limit
from deckhand.server.testing import ServerProcess
from deckhand.serving.testing import ServeProcess

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2.0
LIMITS = ["--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", "2", "--max-connections", "1200"]


class Target:
    def __init__(self, url: str, health: str, reads_body: str) -> None:
        self.url, self.health = url, health
        self.reads_body = reads_body.encode()  # a POST route whose application reads the body
        self.address = ("127.0.0.1", int(url.rsplit(":", 1)[1]))

    def connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        sock.setblocking(False)
        return sock

    def healthy_within(self, seconds: float) -> bool:
        started = time.monotonic()
        response = httpx.get(self.url + self.health, timeout=seconds)
        return response.status_code == 200 and time.monotonic() - started < seconds


@pytest.fixture(scope="module", params=["deckhand serve", "deckhand server"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, demo_package: Path
) -> Iterator[Target]:
    raise_open_files_limit(4096)  # this test process holds a thousand sockets too
    tmp = tmp_path_factory.mktemp("listener")
    if request.param == "deckhand serve":
        with ServeProcess(["--package", str(demo_package), *LIMITS], tmp / "serve.log") as serve:
            serve.wait_ready()
            yield Target(serve.url, "/ping", "/predictions")
    else:
        token = "dh_" + secrets.token_urlsafe(32)
        with ServerProcess(tmp / "data", bootstrap_token=token, extra_args=LIMITS) as server:
            yield Target(server.url, "/healthz", "/api/v1/agent/environments/e/events")


def _closed_by_server(socks: list[socket.socket], deadline: float) -> tuple[int, set[bytes]]:
    """Read every socket until the server closes it or the deadline passes; the number
    closed and the status lines they were sent first."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ, bytearray())
    closed, statuses = 0, set()
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except ConnectionResetError:
                data = b""
            if data:
                key.data.extend(data)
                continue
            selector.unregister(key.fileobj)
            closed += 1
            statuses.add(bytes(key.data).split(b"\r\n", 1)[0])
    selector.close()
    return closed, statuses


def test_slowloris_is_closed_within_the_header_timeout_while_health_answers(target: Target) -> None:
    opened = time.monotonic()
    socks = []
    try:
        for i in range(1000):  # each starts a request and never finishes its headers
            sock = target.connect()
            sock.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow-" + str(i).encode())
            socks.append(sock)
        assert time.monotonic() - opened < HEADER_TIMEOUT, "opening the connections took too long for the test"
        for _ in range(5):
            assert target.healthy_within(1.0)
        closed, statuses = _closed_by_server(socks, opened + HEADER_TIMEOUT + 3.0)
        seconds = time.monotonic() - opened
    finally:
        for sock in socks:
            sock.close()
    print(f"\n{target.url}: {closed} of 1000 half-sent requests closed {seconds:.1f} s after the first opened")
    assert closed == 1000
    assert statuses == {b"HTTP/1.1 408 Request Timeout"}
    assert target.healthy_within(1.0)


def test_a_trickled_body_gets_a_408_naming_the_flag(target: Target) -> None:
    sock = target.connect()
    sock.setblocking(True)
    sock.settimeout(10)
    started = time.monotonic()
    sock.sendall(b"POST " + target.reads_body + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    answer = b""
    for _ in range(40):  # one byte every 0.2 s: 5 B/s, far under the 500 B/s a body must keep up
        try:
            sock.sendall(b"x")
        except (BrokenPipeError, ConnectionResetError):
            break
        time.sleep(0.2)  # the slow client's pace, not a wait for anything
        if time.monotonic() - started > 2.5:
            break
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:200]
    assert b"--body-timeout" in answer
    assert time.monotonic() - started < 5


def test_oversized_headers_get_a_431_naming_the_flag(target: Target) -> None:
    sock = target.connect()
    sock.setblocking(True)
    sock.settimeout(10)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 100_000 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"--max-header-bytes" in answer


def test_at_the_connection_cap_idle_connections_make_room(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    args = ["--models-dir", str(tmp_path / "models"), "--max-connections", "50"]
    with ServeProcess(args, tmp_path / "serve.log") as serve:
        serve.wait_ready()
        target = Target(serve.url, "/ping", "/predictions")
        idle = [target.connect() for _ in range(120)]  # connected, and silent
        try:
            time.sleep(0.5)  # not an event: the connections stay silent a while, so they are idle
            for _ in range(5):  # a real client still gets in: the oldest idle connection is closed for it
                assert target.healthy_within(1.0)
            closed, _ = _closed_by_server(idle, time.monotonic() + 2.0)
        finally:
            for sock in idle:
                sock.close()
    assert closed >= 120 - 50


def test_a_client_that_never_reads_its_answer_is_let_go(demo_package: Path) -> None:
    """A large answer to a client that stops reading waits `send_timeout_s`, then the
    connection is closed: the server holds neither the connection nor the rest of the answer."""
    from tests.serving.conftest import running_server

    from deckhand.listener import ConnectionLimits
    from deckhand.serving.config import ServeConfig

    body = ("sepal_length,sepal_width,petal_length,petal_width\n" + "5.1,3.5,1.4,0.2\n" * 200_000).encode()
    config = ServeConfig(package=demo_package, limits=ConnectionLimits(send_timeout_s=1.0))
    with running_server(config) as (url, _app):
        sock = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        sock.sendall(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n")
        sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(4.0)  # scoring takes about a second; then the answer stalls for more than send_timeout_s
        sock.settimeout(10)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        sock.close()
        full = len(httpx.post(f"{url}/predictions", content=body, headers={"content-type": "text/csv"}).content)
    assert 0 < received < full / 2, (received, full)  # cut short, long before the end


def test_at_the_cap_with_no_idle_connection_a_new_one_gets_a_503(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    args = ["--models-dir", str(tmp_path / "models"), "--max-connections", "5", "--body-timeout", "30"]
    with ServeProcess(args, tmp_path / "serve.log") as serve:
        serve.wait_ready()
        target = Target(serve.url, "/ping", "/predictions")
        busy = []
        for _ in range(5):  # each in the middle of sending a body: none is idle
            sock = target.connect()
            sock.send(b"POST /predictions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx")
            busy.append(sock)
        try:
            # no outside sign that the server read the partial bodies: a margin, not an event
            time.sleep(0.5)
            extra = socket.create_connection(target.address, timeout=5)
            answer = extra.recv(4096)
            extra.close()
        finally:
            for sock in busy:
                sock.close()
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"too many open connections" in answer
        assert target.healthy_within(2.0)  # once they are gone, the server answers again

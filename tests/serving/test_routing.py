"""The route table the prediction server's listeners share, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from deckhand.serving.dataplane import ModelNotLoaded, UnknownDeployment
from deckhand.serving.http import HttpError
from deckhand.serving.routing import Request, Route, RouteTable


async def _noop(request: Request) -> None:
    return None


async def _other(request: Request) -> None:
    return None


def _table(**options: Any) -> RouteTable:
    return RouteTable(
        [
            Route("GET", "/ping", _noop),
            Route("GET", "/items", _noop),
            Route("GET", "/items/{id}", _noop),
            Route("DELETE", "/items/{id}", _other),
            Route("POST", "/items/{id}/run", _other),
        ],
        listener="test",
        **options,
    )


def test_fixed_and_captured_paths_find_their_handler() -> None:
    table = _table()
    assert table.match("GET", "/ping") == (_noop, {})
    assert table.match("GET", "/ping/") == (_noop, {})
    assert table.match("GET", "/items/a1") == (_noop, {"id": "a1"})
    assert table.match("DELETE", "/items/a1") == (_other, {"id": "a1"})
    assert table.match("POST", "/items/a1/run/") == (_other, {"id": "a1"})


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/ping", "GET"),
        ("PUT", "/items", "GET"),
        ("POST", "/items/a1", "DELETE, GET"),
        ("GET", "/items/a1/run", "POST"),
    ],
)
def test_a_served_path_with_another_method_is_a_405_naming_the_allowed_ones(method: str, path: str, allow: str) -> None:
    with pytest.raises(HttpError) as caught:
        _table().match(method, path)
    assert caught.value.status == 405
    assert caught.value.headers == [(b"allow", allow.encode())]
    assert f"{method} " in caught.value.message and f"(allowed: {allow})" in caught.value.message


@pytest.mark.parametrize("path", ["/", "/nothing", "/items/a1/b2", "/items//run", "/itemsx", "/ping/more"])
def test_an_unknown_path_is_a_404_whatever_the_method(path: str) -> None:
    for method in ("GET", "POST"):
        with pytest.raises(HttpError) as caught:
            _table(not_found_hint="see GET /items").match(method, path)
        assert caught.value.status == 404 and caught.value.headers == []
        assert caught.value.message.endswith("on the test listener; see GET /items")


def test_a_405_hint_is_added_for_its_pattern_only() -> None:
    table = _table(not_allowed_hints={"/items/{id}": "changes go elsewhere"})
    with pytest.raises(HttpError) as caught:
        table.match("POST", "/items/a1")
    assert caught.value.message == (
        "POST /items/<id> is not served on the test listener (allowed: DELETE, GET): changes go elsewhere"
    )
    with pytest.raises(HttpError) as caught:
        table.match("POST", "/ping")
    assert caught.value.message == "POST /ping is not served on the test listener (allowed: GET)"


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([Route("GET", "ping", _noop)], "must start with '/'"),
        ([Route("GET", "/a/{x-y}", _noop)], "must be text or '{name}'"),
        ([Route("GET", "/a//b", _noop)], "must be text or '{name}'"),
        ([Route("GET", "/a", _noop), Route("GET", "/a", _other)], "GET /a is listed twice"),
        ([Route("GET", "/a/{x}", _noop), Route("POST", "/a/{y}", _other)], "matches the same paths as another"),
    ],
)
def test_a_bad_table_is_refused_when_built(routes: list[Route], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("{", r"\{")):
        RouteTable(routes, listener="test")


def test_fixed_paths_win_and_patterns_may_share_capture_positions() -> None:
    table = RouteTable(
        [
            Route("GET", "/d/latest", _noop),
            Route("POST", "/d/{id}", _other),
            Route("GET", "/d/{id}/info", _noop),
            Route("GET", "/d/{name}/run", _other),
        ],
        listener="test",
    )
    assert table.match("GET", "/d/latest") == (_noop, {})
    assert table.match("POST", "/d/latest") == (_other, {"id": "latest"})
    assert table.match("GET", "/d/x/info") == (_noop, {"id": "x"})
    assert table.match("GET", "/d/x/run") == (_other, {"name": "x"})
    with pytest.raises(HttpError) as caught:
        table.match("PUT", "/d/latest")
    assert caught.value.headers == [(b"allow", b"GET, POST")]


def test_a_hint_for_an_unknown_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="not routes"):
        _table(not_allowed_hints={"/itemz/{id}": "typo"})


def _call(table: RouteTable, method: str, path: str) -> tuple[int, dict[bytes, bytes], Any]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(table(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), orjson.loads(sent[1]["body"])


def test_the_table_answers_errors_as_json_and_runs_its_guard_first() -> None:
    async def missing(request: Request) -> None:
        raise UnknownDeployment(f"no deployment {request.params['id']!r}")

    async def unloaded(request: Request) -> None:
        raise ModelNotLoaded("not yet")

    def guard(scope: dict[str, Any]) -> None:
        if scope["path"].startswith("/secret"):
            raise HttpError(401, "token needed", headers=[(b"www-authenticate", b"Bearer")])

    table = RouteTable([Route("GET", "/d/{id}", missing), Route("GET", "/u", unloaded)], listener="test", guard=guard)
    status, headers, body = _call(table, "GET", "/d/x")
    assert (status, body) == (404, {"message": "no deployment 'x'"})
    status, headers, body = _call(table, "GET", "/u")
    assert (status, body) == (503, {"message": "not yet"})
    status, headers, body = _call(table, "PUT", "/u")
    assert status == 405 and headers[b"allow"] == b"GET"
    status, headers, body = _call(table, "GET", "/secret/nothing")
    assert (status, headers[b"www-authenticate"], body) == (401, b"Bearer", {"message": "token needed"})

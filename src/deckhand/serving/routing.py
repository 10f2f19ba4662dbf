"""A declarative route table over raw ASGI, shared by the prediction server's listeners.

A listener lists its routes once, as `Route(method, pattern, handler)` entries; patterns
are paths whose `{name}` segments capture one non-empty path segment. The table finds the
handler for a request, or answers 405 with an `Allow` header when the path is served but
not with this method, and 404 when no pattern matches the path. Handlers raise
`HttpError`, or the operations' typed errors, which become statuses here (`ERROR_STATUS`).

Matching is a dict lookup for fixed paths, and for the others one dict lookup (of their
literal segments) per shape, patterns with captures at the same positions; routing costs
about a microsecond on the prediction path, and there is no framework in between.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from deckhand.serving.dataplane import ModelNotLoaded, OperationError, UnknownDeployment
from deckhand.serving.http import HttpError, Scope, json_body, send_response

# The HTTP status of each typed error the operations raise.
ERROR_STATUS: dict[type[OperationError], int] = {UnknownDeployment: 404, ModelNotLoaded: 503}


@dataclass(slots=True)
class Request:
    """What a handler gets: the ASGI triple and the values the pattern captured."""

    scope: Scope
    receive: Any
    send: Any
    params: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # "/deployments/{id}/predictions"
    handler: Handler


@dataclass
class _Pattern:
    text: str
    segments: tuple[str, ...]  # "{name}" for a capture
    handlers: dict[str, Handler] = field(default_factory=dict)
    captures: tuple[tuple[str, int], ...] = ()  # (name, position)


class _Shape:
    """Patterns with their captures at the same positions, found by their literal segments
    in one dict lookup: `/deployments/{id}/info` and `/deployments/{id}/predict` share a shape."""

    def __init__(self, literal_at: tuple[int, ...]) -> None:
        self.literal_at = literal_at
        self.literals: Callable[[Sequence[str]], Any] = itemgetter(*literal_at) if literal_at else _nothing
        self.by_literals: dict[Any, _Pattern] = {}

    def find(self, parts: list[str]) -> tuple[_Pattern, dict[str, str]] | None:
        pattern = self.by_literals.get(self.literals(parts))
        if pattern is None:
            return None
        params = {}
        for name, i in pattern.captures:
            value = parts[i]
            if not value:  # "/deployments//info": a capture is never empty
                return None
            params[name] = value
        return pattern, params


def _nothing(parts: Sequence[str]) -> tuple[()]:
    return ()


def _segments(pattern: str) -> tuple[str, ...]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    if pattern == "/":
        return ()
    parts = tuple(pattern[1:].split("/"))
    for part in parts:
        capture = part.startswith("{") and part.endswith("}") and part[1:-1].isidentifier()
        if not part or (not capture and ("{" in part or "}" in part)):
            raise ValueError(f"route pattern {pattern!r}: segment {part!r} must be text or '{{name}}'")
    return parts


def _shown(pattern: str) -> str:
    """`/deployments/{ref}` as users read it in messages: `/deployments/<ref>`."""
    return pattern.replace("{", "<").replace("}", ">")


class RouteTable:
    """The routes of one listener, and an ASGI callable serving them. `listener` names it
    in error messages, `not_found_hint` ends 404 messages, `not_allowed_hints` (pattern ->
    text) end the 405 messages of that pattern, and `guard(scope)` runs before routing
    (raising HttpError to refuse, e.g. a 401)."""

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        listener: str,
        not_found_hint: str = "",
        not_allowed_hints: Mapping[str, str] | None = None,
        guard: Callable[[Scope], None] | None = None,
    ) -> None:
        self.routes = list(routes)
        self.guard = guard
        self.listener = listener
        self.not_found_hint = not_found_hint
        self.not_allowed_hints = dict(not_allowed_hints or {})
        self._fixed: dict[str, _Pattern] = {}
        self._shapes: dict[int, list[_Shape]] = {}  # by segment count
        patterns: dict[str, _Pattern] = {}
        for route in self.routes:
            pattern = patterns.get(route.pattern)
            if pattern is None:
                pattern = patterns[route.pattern] = _Pattern(route.pattern, _segments(route.pattern))
                if "{" in route.pattern:
                    self._add_shaped(pattern)
                else:
                    self._fixed[route.pattern] = pattern
            if route.method in pattern.handlers:
                raise ValueError(f"route {route.method} {route.pattern} is listed twice")
            pattern.handlers[route.method] = route.handler
        unknown = set(self.not_allowed_hints) - set(patterns)
        if unknown:
            raise ValueError(f"not_allowed_hints name patterns that are not routes: {sorted(unknown)}")

    def _add_shaped(self, pattern: _Pattern) -> None:
        segments = pattern.segments
        literal_at = tuple(i for i, part in enumerate(segments) if part[0] != "{")
        pattern.captures = tuple((part[1:-1], i) for i, part in enumerate(segments) if part[0] == "{")
        shapes = self._shapes.setdefault(len(segments), [])
        shape = next((s for s in shapes if s.literal_at == literal_at), None)
        if shape is None:
            shape = _Shape(literal_at)
            shapes.append(shape)
        key = shape.literals(segments)
        if key in shape.by_literals:  # same literals at the same positions: only capture names differ
            raise ValueError(f"route pattern {pattern.text!r} matches the same paths as another pattern")
        shape.by_literals[key] = pattern

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler for `method path` (trailing slashes ignored) and its captures."""
        path = path.rstrip("/") or "/"
        matched: list[_Pattern] = []
        fixed = self._fixed.get(path)
        if fixed is not None:
            handler = fixed.handlers.get(method)
            if handler is not None:
                return handler, {}
            matched.append(fixed)  # a pattern with captures may still serve this method
        parts = path[1:].split("/")
        for shape in self._shapes.get(len(parts), ()):
            found = shape.find(parts)
            if found is None:
                continue
            pattern, params = found
            handler = pattern.handlers.get(method)
            if handler is not None:
                return handler, params
            matched.append(pattern)
        if matched:
            self._not_allowed(method, matched)
        hint = f"; {self.not_found_hint}" if self.not_found_hint else ""
        raise HttpError(404, f"no route {method} {path} on the {self.listener} listener{hint}")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Serve one HTTP request: the guard, then the route's handler. An HttpError or a
        typed operation error becomes a JSON `{"message": ...}` response."""
        try:
            if self.guard is not None:
                self.guard(scope)
            handler, params = self.match(scope["method"], scope["path"])
            await handler(Request(scope, receive, send, params))
        except HttpError as exc:
            await send_response(send, exc.status, json_body({"message": exc.message}), headers=exc.headers)
        except OperationError as exc:
            await send_response(send, ERROR_STATUS.get(type(exc), 500), json_body({"message": str(exc)}))

    def _not_allowed(self, method: str, patterns: list[_Pattern]) -> None:
        allowed = sorted({m for pattern in patterns for m in pattern.handlers})
        shown = _shown(patterns[0].text)
        message = f"{method} {shown} is not served on the {self.listener} listener (allowed: {', '.join(allowed)})"
        hint = next((self.not_allowed_hints[p.text] for p in patterns if p.text in self.not_allowed_hints), "")
        raise HttpError(
            405,
            f"{message}: {hint}" if hint else message,
            headers=[(b"allow", ", ".join(allowed).encode())],
        )

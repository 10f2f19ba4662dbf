"""The HTTP listener of deckhand's servers: uvicorn with bounds on every connection.

uvicorn on its own waits forever for a request's headers (a connection that says nothing,
or one header byte a minute, holds a file descriptor until the client goes away), reads
headers of any size, waits forever for a slow body and for a client that never reads
its response. `GuardedHttpToolsProtocol` adds what nginx and Apache's mod_reqtimeout
enforce, and both the prediction server and the control plane listen through it:

- headers must arrive within `header_timeout_s` and stay under `max_header_bytes`
  (408 / 431, then the connection is closed);
- a body must arrive within `body_timeout_s`, extended by one second for every
  `body_min_rate` bytes received (so large uploads at a sane rate are fine and a
  trickle is not); time while the application is not reading does not count (408);
- a response the client does not read for `send_timeout_s` is abandoned;
- at most `max_connections` are open; when a new one arrives at the cap, the oldest
  connection that is idle or still sending its headers is closed to make room (a
  slowloris cannot lock out real clients), and if none is idle the new one gets 503.

`serve` also stops promptly: on shutdown, a request whose client has already gone (an
agent's abandoned long poll, say) is cancelled at once rather than waited for until the
graceful-shutdown timeout, since nobody can receive its response; so is a request to a
path in `abort_on_shutdown` (long polls, which only wait, and which clients repeat).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import resource
import socket
import time
from collections import OrderedDict
from typing import Any

import uvicorn
from pydantic import BaseModel, ConfigDict, Field
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("deckhand.listener")


class ConnectionLimits(BaseModel):
    """Per-connection bounds; the errors name the CLI flags (deckhand.cli.listener_options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header_timeout_s: float = Field(default=10.0, gt=0)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    body_timeout_s: float = Field(default=20.0, gt=0)
    body_min_rate: int = Field(default=500, gt=0, description="bytes/s that extend the body timeout by 1 s")
    send_timeout_s: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=1024, ge=1)


class GuardedConfig(Config):
    """uvicorn's Config plus the limits (it is pickled to worker processes with them).
    `prompt_shutdown` (with GuardedServer) keeps track of each request's task, so that
    shutdown can cancel the ones nobody waits for; `abort_on_shutdown` names paths whose
    requests are ended at once on shutdown."""

    def __init__(
        self,
        app: Any,
        *,
        limits: ConnectionLimits | None = None,
        prompt_shutdown: bool = False,
        abort_on_shutdown: re.Pattern[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, http=GuardedHttpToolsProtocol, **kwargs)
        self.connection_limits = limits or ConnectionLimits()
        self.prompt_shutdown = prompt_shutdown or abort_on_shutdown is not None
        self.abort_on_shutdown = abort_on_shutdown


_HEAD, _BODY, _APP = "head", "body", "app"  # where a connection is: reading headers, body, or served


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, server_state: Any, app_state: dict[str, Any], _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, "connection_limits", None) or ConnectionLimits()
        # per server: the connections that are idle or reading headers, oldest first
        if not hasattr(server_state, "deckhand_evictable"):
            server_state.deckhand_evictable = OrderedDict()
        self._evictable: OrderedDict[GuardedHttpToolsProtocol, None] = server_state.deckhand_evictable
        if not hasattr(server_state, "deckhand_abandoned"):
            server_state.deckhand_abandoned = set()
            server_state.deckhand_shutting_down = False
        self._server_state = server_state
        self._request_task: asyncio.Task[Any] | None = None  # the ASGI task of the current request
        self._track_tasks = bool(getattr(config, "prompt_shutdown", False))
        self._abort_on_shutdown: re.Pattern[str] | None = getattr(config, "abort_on_shutdown", None)
        self._abortable = False  # the current request is cancelled when the server shuts down
        self._phase = _HEAD
        self._timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._body_bytes = 0
        self._body_started = 0.0

    # -- connection ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections and not self._make_room():
            self.transport = transport  # connection_lost (which uvicorn calls next) needs it
            _refuse(transport, 503, "the server has too many open connections; retry later")
            log.warning("event=connection_refused reason=max_connections limit=%d", self.limits.max_connections)
            return
        super().connection_made(transport)
        self._evictable[self] = None
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._cancel_send_timer()
        self._evictable.pop(self, None)
        abandoned = self.cycle is not None and not self.cycle.response_complete
        super().connection_lost(exc)
        task = self._request_task
        if abandoned and task is not None and not task.done():
            if self._server_state.deckhand_shutting_down:
                task.cancel()
            else:
                self._server_state.deckhand_abandoned.add(task)
                task.add_done_callback(self._server_state.deckhand_abandoned.discard)

    def abort_if_abortable(self) -> None:
        """On shutdown: end the current request if its path is in `abort_on_shutdown`, with a
        503 when it has not answered yet (the client retries), and cancel its task."""
        task = self._request_task
        if not self._abortable or task is None or task.done():
            return
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.disconnected = True  # what the application still sends is dropped
            _refuse(self.transport, 503, "the server is shutting down; retry")
        task.cancel()

    def _track_request_task(self, start: Any) -> None:
        """Run `start` (uvicorn's, which may start the request's ASGI task) and remember the task."""
        if not self._track_tasks:  # costs a copy of the in-flight set per request: only when used
            start()
            return
        before = set(self.tasks)
        start()
        started = self.tasks - before
        if started:
            self._request_task = started.pop()

    def _make_room(self) -> bool:
        """Close the oldest idle or header-reading connection; False when there is none."""
        while self._evictable:
            oldest, _ = self._evictable.popitem(last=False)
            if not oldest.transport.is_closing():
                log.info("event=connection_evicted reason=max_connections phase=%s", oldest._phase)
                oldest.transport.close()
                return True
        return False

    # -- reading ------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._phase == _HEAD:
            self._head_bytes += len(data)
            if self._timer is None:  # the first bytes after a keep-alive pause
                self._arm(self.limits.header_timeout_s)
        super().data_received(data)
        if self._phase == _HEAD and self._head_bytes > self.limits.max_header_bytes:
            self._fail(
                431,
                f"the request headers are over {self.limits.max_header_bytes} bytes (--max-header-bytes)",
            )

    def on_headers_complete(self) -> None:
        self._cancel()
        self._evictable.pop(self, None)
        self._phase, self._head_bytes = _BODY, 0
        self._body_bytes, self._body_started = 0, time.monotonic()
        self._arm(self.limits.body_timeout_s)
        self._track_request_task(super().on_headers_complete)
        pattern = self._abort_on_shutdown
        self._abortable = pattern is not None and pattern.match(self.scope.get("path", "")) is not None

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel()
        self._phase = _APP
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete:  # answered before the body was read
            self._idle()

    def on_response_complete(self) -> None:
        self._track_request_task(super().on_response_complete)  # it starts a pipelined request
        if self._phase == _APP:  # else the body is still arriving, under its own deadline
            self._idle()

    def _idle(self) -> None:
        """Between requests (uvicorn's keep-alive timer runs): evictable at the cap."""
        if not self.transport.is_closing():
            self._phase, self._head_bytes = _HEAD, 0
            self._evictable[self] = None

    # -- writing ------------------------------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout_s, self._send_expired)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send_timer()

    def _send_expired(self) -> None:
        self._send_timer = None
        log.info("event=connection_closed reason=send_timeout seconds=%s", self.limits.send_timeout_s)
        self.transport.abort()  # close() would wait to flush what the client does not read

    def _cancel_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    # -- timers -------------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        self._cancel()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase == _HEAD:
            self._fail(
                408, f"the request headers did not arrive within {self.limits.header_timeout_s:g} s (--header-timeout)"
            )
        elif self._phase == _BODY:
            if self.flow.read_paused:  # the application is not reading: not the client's fault
                self._arm(1.0)
                return
            allowed = self.limits.body_timeout_s + self._body_bytes / self.limits.body_min_rate
            left = self._body_started + allowed - time.monotonic()
            if left > 0:
                self._arm(left)
                return
            self._fail(
                408,
                f"the request body did not arrive in time ({self._body_bytes} bytes in "
                f"{allowed:.0f} s; --body-timeout {self.limits.body_timeout_s:g} s plus 1 s per "
                f"{self.limits.body_min_rate} bytes)",
            )

    def _fail(self, status: int, message: str) -> None:
        """Answer `status` (unless a response has begun) and close the connection."""
        log.info("event=connection_closed status=%d reason=%r client=%s", status, message, self.client)
        cycle = self.cycle
        if self._phase == _BODY and cycle is not None:
            if cycle.response_started:  # the application has answered: only stop reading
                self.transport.close()
                return
            cycle.disconnected = True  # the application sees a disconnect; its response is dropped
            cycle.message_event.set()
        _refuse(self.transport, status, message)


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def _refuse(transport: asyncio.BaseTransport, status: int, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    if not transport.is_closing():
        transport.write(head + body)  # type: ignore[attr-defined]
    transport.close()


def raise_open_files_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (at most the hard limit); return it.
    A shell's default of 1024 descriptors would run out before `max_connections`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class _CancelledAtShutdown(logging.Filter):
    """uvicorn logs a request task cancelled at shutdown as an error with a traceback; it is
    an expected event, logged as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            record.msg, record.args, record.exc_info = "event=request_cancelled reason=server_shutdown", (), None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class GuardedServer(uvicorn.Server):
    """uvicorn's server; on shutdown, requests whose client has gone (or goes during the
    graceful period) and requests to `abort_on_shutdown` paths are cancelled at once."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state: Any = self.server_state  # with the deckhand_* attributes the protocol added
        state.deckhand_shutting_down = True
        quiet = _CancelledAtShutdown()
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(quiet)
        try:
            for task in list(getattr(state, "deckhand_abandoned", ())):
                task.cancel()
            for connection in list(state.connections):
                if isinstance(connection, GuardedHttpToolsProtocol):
                    connection.abort_if_abortable()
            await super().shutdown(sockets)
        finally:
            uvicorn_log.removeFilter(quiet)


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    limits: ConnectionLimits,
    abort_on_shutdown: re.Pattern[str] | None = None,
    **options: Any,
) -> None:
    """Run `app` on host:port through the guarded listener until interrupted."""
    raise_open_files_limit(limits.max_connections + 256)
    config = GuardedConfig(
        app, host=host, port=port, limits=limits, prompt_shutdown=True, abort_on_shutdown=abort_on_shutdown, **options
    )
    GuardedServer(config).run()

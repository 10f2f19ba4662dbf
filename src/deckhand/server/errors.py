"""API errors and their JSON form: `{"detail": "...", "errors": [...]}`.

Services raise `ApiError` subclasses with a message that names the field or resource
and says what to do; the handlers here turn them (and request validation errors) into
responses. A body that cannot be parsed as JSON is a 400, a parsed body that does not
fit the schema a 422 that names each field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """`errors` (optional) lists each problem as `{"field", "message", "type"}`, as a 422 does."""

    status_code = 500

    def __init__(
        self, message: str, headers: dict[str, str] | None = None, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers
        self.errors = errors


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class InvalidField(ApiError):
    """A 422 about one field, for checks pydantic cannot do (e.g. a query combination)."""

    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        where, rest = parts[0], parts[1:]
        return ".".join(rest) if rest else where
    return ".".join(parts)


_FIELD_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_.]*): ")


def _validation_errors(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    for err in exc.errors():
        field = _field_name(err.get("loc", ()))
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        named = _FIELD_PREFIX.match(message)
        if named and field in ("body", "query", ""):
            # A model-level check names its field at the start of the message.
            field, message = named.group(1), message[named.end() :]
        if err.get("type") == "extra_forbidden":
            message = "unknown field; check its spelling (fields are camelCase)"
        elif err.get("type") == "missing":
            message = "field required"
        elif err.get("type") == "bool_type":
            message = f"expected true or false (a JSON boolean), found {json.dumps(err.get('input'), default=str)}"
        errors.append({"field": field, "message": message, "type": err.get("type")})
    detail = "; ".join(
        e["message"] if e["message"].startswith(e["field"] + ":") else f"{e['field']}: {e['message']}" for e in errors
    )
    return detail or "invalid request", errors


SEND_JSON = "send a JSON object with 'Content-Type: application/json'"


def _unparseable_json(exc: RequestValidationError) -> str | None:
    """The 400 message for a body that is not JSON at all (FastAPI reports it as a 422 `json_invalid`)."""
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            loc = err.get("loc", ())
            where = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
            reason = (err.get("ctx") or {}).get("error", "JSON decode error")
            return f"body: not valid JSON ({reason}{where}); {SEND_JSON}"
    return None


def install_error_handlers(app: FastAPI) -> None:
    from deckhand.server.services.artifacts.base import ArtifactStoreError

    @app.exception_handler(ArtifactStoreError)
    async def _store_unavailable(_request: Request, exc: ArtifactStoreError) -> JSONResponse:
        # The object store is down or refuses us: the message names it and why; try again.
        return JSONResponse({"detail": f"{exc}; try again"}, status_code=503)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"detail": exc.message}
        if exc.errors:
            body["errors"] = exc.errors
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        unparseable = _unparseable_json(exc)
        if unparseable is not None:
            return JSONResponse({"detail": unparseable}, status_code=BadRequest.status_code)
        detail, errors = _validation_errors(exc)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == BadRequest.status_code and isinstance(exc.__cause__, ValueError):
            # FastAPI could not decode the body at all (e.g. bytes that are not UTF-8).
            detail = f"body: not JSON text ({type(exc.__cause__).__name__}); {SEND_JSON}"
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

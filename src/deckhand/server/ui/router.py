"""The web UI's routes under `/ui`: login, environments, deployments, a deployment's page and its live panel,
notifications. (The buttons of the deployment and notifications pages post to `actions.py`.)

Pages are rendered on the server from the public API (see `api.py`), called with the token
the user logged in with. The token lives in a cookie that scripts cannot read (HttpOnly),
that the browser sends only to this site's `/ui` pages (Path=/ui, SameSite=Strict), and
that dies with the browser session; it never appears in a URL or a page. The only script,
`static/ui.js`, re-fetches the live panel of a deployment every few seconds (and asks
before a destructive button posts).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from deckhand.server import security_headers
from deckhand.server.auth import mask_token
from deckhand.server.replace_reasons import DEFAULT_REASON, REPLACE_REASONS
from deckhand.server.ui.accuracy_panels import BUCKET_SECONDS as ACCURACY_BUCKET_SECONDS
from deckhand.server.ui.accuracy_panels import AccuracyPanel, accuracy_panel
from deckhand.server.ui.api import ApiCallError, UiApi
from deckhand.server.ui.csrf import CSRF_COOKIE, CSRF_FIELD, csrf_problem, form_token, new_nonce
from deckhand.server.ui.flash import FLASH_COOKIE, decode_flash
from deckhand.server.ui.notification_panels import DELIVERIES_SHOWN, channel_row, delivery_row, policy_row
from deckhand.server.ui.panels import (
    WINDOWS,
    Window,
    drift_panel,
    find_window,
    health_panel,
    parse_time,
    predictions_panel,
    window_range,
)
from deckhand.server.ui.rollout_panels import duration, format_percent, models_panel, rollout_panel

log = logging.getLogger(__name__)

UI_PREFIX = "/ui"
STATIC_PATH = f"{UI_PREFIX}/static"
COOKIE_NAME = "deckhand_ui_token"
REFRESH_SECONDS = 5
EVENTS_SHOWN = 50
MAX_FORM_BODY = 16 * 1024
ADMIN_ROLE = "admin"
UI_DIR = Path(__file__).parent

SECURITY_HEADERS = security_headers.UI

LOGIN_REASONS = {
    "expired": "Your token is no longer accepted (revoked, deleted or expired). Log in with a valid token.",
    "loggedout": "You are logged out.",
    "required": "Log in with an API token to continue.",
}

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(UI_DIR / "templates"))


def _when(value: Any) -> str:
    moment = parse_time(value) if not isinstance(value, datetime) else value
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:.1f}"
    else:
        text = f"{int(value):,}"
    return f"{text} {unit}".strip()


def _latest(values: list[Any]) -> datetime | None:
    moments = [m for m in (parse_time(v) for v in values) if m is not None]
    return max(moments, default=None)


templates.env.filters["when"] = _when
templates.env.filters["number"] = _number
templates.env.filters["latest"] = _latest
templates.env.filters["duration"] = duration
templates.env.filters["percent"] = lambda value: "—" if value is None else format_percent(value)


def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    base = {
        "ui": UI_PREFIX,
        "static": STATIC_PATH,
        "logged_in": bool(request.cookies.get(COOKIE_NAME)),
        "csrf_field": CSRF_FIELD,
        "csrf_token": getattr(request.state, "csrf_token", None),  # set by `_page` for logged-in pages
    }
    response = templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)
    return _secure(response)


def _render_with_flash(request: Request, name: str, context: dict[str, Any]) -> Response:
    """A page that shows the one-time message of the action that led to it (`flash.py`), once."""
    response = _render(request, name, {**context, "flash": decode_flash(request.cookies.get(FLASH_COOKIE))})
    if FLASH_COOKIE in request.cookies:
        clear_ui_cookie(response, FLASH_COOKIE)
    return response


def _safe_next(target: str | None) -> str:
    """Only a path inside the UI: never another host (open redirect), `..`, nor the login page itself."""
    path = urlsplit(target).path if target else ""
    if (
        not target
        or not target.startswith(UI_PREFIX + "/")
        or "\\" in target
        or ".." in path.split("/")
        or path.rstrip("/") in (f"{UI_PREFIX}/login", f"{UI_PREFIX}/logout")
    ):
        return f"{UI_PREFIX}/deployments"
    return target


def _login_redirect(request: Request, reason: str, here: str | None = None) -> Response:
    """To the login form, and back to `here` (default: this page) after it."""
    here = here or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{UI_PREFIX}/login?reason={reason}&next={quote(_safe_next(here), safe='')}"
    response = RedirectResponse(location, status_code=303)
    if reason == "expired":
        _clear_cookie(response)
    return _secure(response)


def set_ui_cookie(response: Response, request: Request, name: str, value: str) -> None:
    """Every UI cookie alike: HttpOnly, SameSite=Strict, Path=/ui, for the browser session, Secure over HTTPS."""
    response.set_cookie(
        name, value, path=UI_PREFIX, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def clear_ui_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path=UI_PREFIX, httponly=True, samesite="strict")


def _clear_cookie(response: Response) -> None:
    """Forget the session: its token and the CSRF nonce bound to it."""
    clear_ui_cookie(response, COOKIE_NAME)
    clear_ui_cookie(response, CSRF_COOKIE)


def same_origin(request: Request) -> bool:
    """Form posts must come from our own pages (a second line behind SameSite=Strict).

    Browsers send Origin with every form post; Referer stands in where one does not (our
    Referrer-Policy is same-origin, so our own pages send it)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin is None:  # not sent by a browser form (curl, scripts): nothing to forge
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")  # `null` and other sites fail


async def read_form(request: Request) -> dict[str, str] | None:
    """A urlencoded form's first value per field; None when the body is too large."""
    body = await request.body()
    if len(body) > MAX_FORM_BODY:
        return None
    return {key: values[0] for key, values in parse_qs(body.decode("utf-8", errors="replace")).items()}


def refused(request: Request, detail: str) -> Response:
    """A form post we will not act on: a 403 page that says why (nothing was changed)."""
    return _render(request, "error.html", {"title": "Request refused", "detail": detail}, status_code=403)


Page = Callable[[Request, UiApi], Awaitable[Response]]


async def _page(request: Request, build: Page, fragment: bool = False) -> Response:
    """Run `build` with an API client for the logged-in user; map API failures to what a person sees."""
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        if fragment:
            return _secure(PlainTextResponse("login required", status_code=401))
        return _login_redirect(request, "required")
    # Forms on the page carry a token bound to this session (csrf.py); a session without a
    # nonce yet (logged in before this page existed, or the cookie was lost) gets one now.
    nonce = request.cookies.get(CSRF_COOKIE) or new_nonce()
    request.state.csrf_token = form_token(nonce, token)
    try:
        response = await build(request, UiApi(request.app, token))
        if CSRF_COOKIE not in request.cookies:
            set_ui_cookie(response, request, CSRF_COOKIE, nonce)
        return response
    except ApiCallError as exc:
        if exc.status_code == 401:
            log.info("event=ui_token_rejected token=%s path=%s", mask_token(token), request.url.path)
            if fragment:
                response = PlainTextResponse("token rejected", status_code=401)
                _clear_cookie(response)
                return _secure(response)
            return _login_redirect(request, "expired")
        status = exc.status_code if exc.status_code in (403, 404, 409) else 502
        if fragment:
            return _secure(PlainTextResponse(f"error {exc.status_code}: {exc.detail}", status_code=status))
        titles = {403: "Not allowed", 404: "Not found", 409: "Ambiguous name"}
        return _render(
            request,
            "error.html",
            {"title": titles.get(status, "The control plane did not answer as expected"), "detail": exc.detail},
            status_code=status,
        )


# -- entry points and login -------------------------------------------------------------


@router.get("/")
async def root() -> Response:
    return RedirectResponse(f"{UI_PREFIX}/", status_code=307)


@router.get(UI_PREFIX)
@router.get(f"{UI_PREFIX}/")
async def ui_home(request: Request) -> Response:
    if request.cookies.get(COOKIE_NAME):
        return RedirectResponse(f"{UI_PREFIX}/deployments", status_code=303)
    return RedirectResponse(f"{UI_PREFIX}/login", status_code=303)


@router.get(f"{UI_PREFIX}/login")
async def login_form(request: Request, reason: str | None = None, next: str | None = None) -> Response:
    message = LOGIN_REASONS.get(reason or "")
    return _render(request, "login.html", {"message": message, "error": None, "next": _safe_next(next)})


@router.post(f"{UI_PREFIX}/login")
async def login(request: Request) -> Response:
    if not same_origin(request):
        return _secure(PlainTextResponse("cross-site login refused", status_code=403))
    form = await read_form(request)
    if form is None:
        return _secure(PlainTextResponse("login form too large", status_code=413))
    token = form.get("token", "").strip()
    next_page = _safe_next(form.get("next", ""))

    def refuse(error: str, status: int) -> Response:
        return _render(request, "login.html", {"message": None, "error": error, "next": next_page}, status)

    if not token:
        return refuse("Enter an API token (an admin creates one: deckhand tokens create NAME --role read-only).", 422)
    try:
        # The UI shows events, which admin and read-only tokens may read and agent tokens may not.
        await UiApi(request.app, token).get("/events", {"limit": 1})
    except ApiCallError as exc:
        log.info("event=ui_login_refused token=%s status=%d", mask_token(token), exc.status_code)
        if exc.status_code == 401:
            return refuse(
                "That token was not accepted: it is mistyped, revoked or expired. "
                "Check it, or ask an admin for a new one (deckhand tokens create NAME --role read-only).",
                401,
            )
        if exc.status_code == 403:
            return refuse(
                "That is an agent token; agent tokens cannot use the web UI. Log in with an admin or read-only token.",
                403,
            )
        return refuse(f"The control plane could not check the token ({exc.status_code}: {exc.detail}).", 502)
    log.info("event=ui_login token=%s", mask_token(token))
    response = RedirectResponse(next_page, status_code=303)
    set_ui_cookie(response, request, COOKIE_NAME, token)
    set_ui_cookie(response, request, CSRF_COOKIE, new_nonce())  # a new login: earlier pages' forms stop working
    return _secure(response)


@router.post(f"{UI_PREFIX}/logout")
async def logout(request: Request) -> Response:
    if not same_origin(request):
        return _secure(PlainTextResponse("cross-site logout refused", status_code=403))
    token = request.cookies.get(COOKIE_NAME)
    form = await read_form(request)
    problem = "the form is too large." if form is None else None
    if token and form is not None:  # logged out already: nothing to protect
        problem = csrf_problem(request.cookies.get(CSRF_COOKIE), token, form.get(CSRF_FIELD))
    if problem:
        return refused(request, f"Log out: refused. {problem}")
    response = RedirectResponse(f"{UI_PREFIX}/login?reason=loggedout", status_code=303)
    _clear_cookie(response)
    return _secure(response)


# -- pages ------------------------------------------------------------------------------


@router.get(f"{UI_PREFIX}/environments")
async def environments_page(request: Request) -> Response:
    async def build(request: Request, api: UiApi) -> Response:
        environments = await api.get("/environments")
        deployments = await api.get("/deployments")
        counts: dict[str, int] = {}
        for dep in deployments:
            counts[dep["environmentId"]] = counts.get(dep["environmentId"], 0) + 1
        return _render(
            request, "environments.html", {"nav": "environments", "environments": environments, "counts": counts}
        )

    return await _page(request, build)


@router.get(f"{UI_PREFIX}/deployments")
async def deployments_page(request: Request, environment: str | None = None) -> Response:
    async def build(request: Request, api: UiApi) -> Response:
        deployments = await api.get("/deployments", {"environmentId": environment} if environment else None)
        environments = {e["id"]: e for e in await api.get("/environments")}
        packages = {p["id"]: p for p in await api.get("/model-packages")}
        context = {
            "nav": "deployments",
            "deployments": deployments,
            "environments": environments,
            "packages": packages,
            "environment_filter": environments.get(environment or "")
            or next((e for e in environments.values() if e["name"] == environment), None),
        }
        return _render(request, "deployments.html", context)

    return await _page(request, build)


async def _is_admin(api: UiApi) -> bool:
    """Whether to show the buttons; the API still decides every action itself."""
    return bool((await api.get("/tokens/me"))["role"] == ADMIN_ROLE)


async def _package_names(api: UiApi, *package_ids: str | None) -> dict[str, str]:
    names = {}
    for package_id in {p for p in package_ids if p}:
        found = await api.get_or_none(f"/model-packages/{quote(package_id, safe='')}")
        if found is not None:
            names[package_id] = found["name"]
    return names


async def _live_context(api: UiApi, deployment: dict[str, Any], window: Window) -> dict[str, Any]:
    """Everything on the deployment page that changes while it is open."""
    dep_id = deployment["id"]
    dep_path = f"/deployments/{quote(dep_id, safe='')}"
    start, end = window_range(window)
    span = {"start": start.isoformat(), "end": end.isoformat()}
    rollout = rollout_panel(await api.get(f"{dep_path}/rollouts"))
    canary_id = rollout.running["modelPackageId"] if rollout and rollout.running else None
    challengers = await api.get(f"{dep_path}/challengers")
    names = await _package_names(api, deployment["modelPackageId"], canary_id)
    monitoring_error = None
    health = drift = predictions = raw_models = None
    try:
        raw_health = await api.get_or_none(
            f"/deployments/{dep_id}/monitoring/service-health", {**span, "bucketSeconds": window.bucket_seconds}
        )
        health = health_panel(raw_health) if raw_health is not None else None
        raw_drift = await api.get_or_none(f"/deployments/{dep_id}/monitoring/drift", span)
        drift = drift_panel(raw_drift) if raw_drift is not None else None
        raw_predictions = await api.get_or_none(f"/deployments/{dep_id}/monitoring/predictions", span)
        predictions = predictions_panel(raw_predictions) if raw_predictions is not None else None
        raw_models = await api.get_or_none(f"{dep_path}/monitoring/models", span)
    except ApiCallError as exc:
        if exc.status_code == 401:
            raise
        monitoring_error = f"{exc.status_code}: {exc.detail}"
    accuracy: AccuracyPanel | None = None
    accuracy_error = None
    try:
        raw_accuracy = await api.get_or_none(f"{dep_path}/accuracy", {**span, "bucketSeconds": ACCURACY_BUCKET_SECONDS})
        challenger_names = {
            c["modelPackageId"]: c["modelPackageName"] for c in challengers if c.get("modelPackageName")
        }
        accuracy = accuracy_panel(raw_accuracy, {**challenger_names, **names})
    except ApiCallError as exc:  # on its own: the other panels still show
        if exc.status_code == 401:
            raise
        accuracy_error = f"{exc.status_code}: {exc.detail}"
    events = await api.get("/events", {"deploymentId": dep_id, "limit": EVENTS_SHOWN})
    return {
        "deployment": deployment,
        "window": window,
        "windows": WINDOWS,
        "health": health,
        "drift": drift,
        "predictions": predictions,
        "monitoring_error": monitoring_error,
        "accuracy": accuracy,
        "accuracy_error": accuracy_error,
        "rollout": rollout,
        "challengers": challengers,
        "models": models_panel(raw_models, deployment["modelPackageId"], canary_id, challengers, names),
        "is_admin": await _is_admin(api),
        "reasons": REPLACE_REASONS,  # for the forms that make a revision: rollback, promote a challenger
        "default_reason": DEFAULT_REASON,
        "events": events,
        "refreshed_at": datetime.now(UTC),
    }


@router.get(f"{UI_PREFIX}/deployments/{{ref}}")
async def deployment_page(request: Request, ref: str, window: str | None = None) -> Response:
    async def build(request: Request, api: UiApi) -> Response:
        deployment = await api.get(f"/deployments/{quote(ref, safe='')}")
        environment = await api.get_or_none(f"/environments/{deployment['environmentId']}")
        package = await api.get_or_none(f"/model-packages/{deployment['modelPackageId']}")
        revisions = await api.get(f"/deployments/{quote(deployment['id'], safe='')}/revisions")
        chosen = find_window(window)
        live = await _live_context(api, deployment, chosen)
        live_src = f"{UI_PREFIX}/deployments/{quote(deployment['id'], safe='')}/live?window={chosen.key}"
        return _render_with_flash(
            request,
            "deployment.html",
            {
                "nav": "deployments",
                "environment": environment,
                "package": package,
                "revisions": revisions,
                "live_src": live_src,
                "refresh_seconds": REFRESH_SECONDS,
                **live,
            },
        )

    return await _page(request, build)


@router.get(f"{UI_PREFIX}/deployments/{{ref}}/live")
async def deployment_live(request: Request, ref: str, window: str | None = None) -> Response:
    """The part of the deployment page that `ui.js` swaps in every few seconds."""

    async def build(request: Request, api: UiApi) -> Response:
        deployment = await api.get(f"/deployments/{quote(ref, safe='')}")
        return _render(request, "_live.html", await _live_context(api, deployment, find_window(window)))

    return await _page(request, build, fragment=True)


@router.get(f"{UI_PREFIX}/notifications")
async def notifications_page(request: Request) -> Response:
    """Channels (never their secrets: the API does not give them), policies, the newest
    deliveries; for admins a "Send test message" button per channel."""

    async def build(request: Request, api: UiApi) -> Response:
        channels = await api.get("/notification-channels")
        policies = await api.get("/notification-policies")
        deliveries = await api.get("/notification-deliveries", {"limit": DELIVERIES_SHOWN})
        channel_names = {c["id"]: c["name"] for c in channels}
        deployment_names = {d["id"]: d["name"] for d in await api.get("/deployments")}
        environment_names = {e["id"]: e["name"] for e in await api.get("/environments")}
        context = {
            "nav": "notifications",
            "channels": [channel_row(c) for c in channels],
            "policies": [policy_row(p, deployment_names, environment_names, channel_names) for p in policies],
            "deliveries": [delivery_row(d, channel_names) for d in deliveries],
            "deliveries_shown": DELIVERIES_SHOWN,
            "is_admin": await _is_admin(api),
        }
        return _render_with_flash(request, "notifications.html", context)

    return await _page(request, build)

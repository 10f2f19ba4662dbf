"""The UI's buttons: on the deployment page promote or abort a canary, promote a challenger,
set the challengers' copy share, roll back; on the notifications page send a test message
on a channel.

Each is a small form posting to `/ui/deployments/{ref}/actions/...` or
`/ui/notifications/channels/{ref}/actions/...`; the route makes the API call the CLI would
make, with the logged-in user's token, and sends the browser back to its page (303) with the
outcome as a one-time message (`flash.py`): the API's answer, or its error detail. Only
admins see the buttons; the API decides all the same (a read-only token's post gets the
API's 403 as the message on the deployment page; on the notifications page, where a
read-only user has no button at all, as a 403 page: nothing is sent).

A post is refused with a 403 page, before any API call, unless it comes from our own pages:
its Origin (or Referer) must be this host, and it must carry the session's CSRF token
(`csrf.py`). The cookies stay HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from deckhand.server.auth import mask_token
from deckhand.server.ui.api import ApiCallError, UiApi
from deckhand.server.ui.csrf import CSRF_COOKIE, CSRF_FIELD, csrf_problem
from deckhand.server.ui.flash import FLASH_COOKIE, Flash, encode_flash
from deckhand.server.ui.notification_panels import outcome_message
from deckhand.server.ui.router import (
    COOKIE_NAME,
    UI_PREFIX,
    _login_redirect,
    _secure,
    read_form,
    refused,
    same_origin,
    set_ui_cookie,
)

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
ACTIONS = f"{UI_PREFIX}/deployments/{{ref}}/actions"
NOTIFICATIONS_PAGE = f"{UI_PREFIX}/notifications"
CHANNEL_ACTIONS = f"{NOTIFICATIONS_PAGE}/channels/{{ref}}/actions"

# An action: the API call(s) for one button, given the API client, the deployment's API path
# and the posted form; it returns the message to show on success.
Action = Callable[[UiApi, str, dict[str, str]], Awaitable[str]]
# The same for any page: given the API client and the posted form, the message to show.
PageAction = Callable[[UiApi, dict[str, str]], Awaitable[Flash]]


async def _run(request: Request, ref: str, what: str, action: Action) -> Response:
    """A deployment page's button."""
    deployment = f"/deployments/{quote(ref, safe='')}"

    async def act(api: UiApi, form: dict[str, str]) -> Flash:
        return Flash("ok", await action(api, deployment, form))

    return await _post(request, UI_PREFIX + deployment, what, act)


async def _post(request: Request, page: str, what: str, action: PageAction, refuse_forbidden: bool = False) -> Response:
    """Check the post (origin, login, CSRF), run `action`, and send the browser back to `page`
    with its message. `refuse_forbidden`: the API's 403 is a 403 page rather than a message."""
    if not same_origin(request):
        return refused(
            request, f"{what}: refused, the form was posted from another site ({request.headers.get('origin')})."
        )
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return _login_redirect(request, "required", here=page)
    form = await read_form(request)
    if form is None:
        return refused(request, f"{what}: refused, the form is too large.")
    problem = csrf_problem(request.cookies.get(CSRF_COOKIE), token, form.get(CSRF_FIELD))
    if problem:
        log.info("event=ui_action_refused action=%r reason=csrf token=%s", what, mask_token(token))
        return refused(request, f"{what}: refused. {problem}")
    try:
        flash = await action(UiApi(request.app, token), form)
    except ApiCallError as exc:
        if exc.status_code == 401:
            return _login_redirect(request, "expired", here=page)
        if exc.status_code == 403 and refuse_forbidden:
            log.info("event=ui_action_refused action=%r reason=role token=%s", what, mask_token(token))
            return refused(request, f"{what}: refused ({exc.status_code}): {exc.detail}")
        flash = Flash("error", f"{what} failed ({exc.status_code}): {exc.detail}")
    log.info("event=ui_action action=%r path=%r result=%s token=%s", what, page, flash.kind, mask_token(token))
    response = RedirectResponse(page, status_code=303)
    set_ui_cookie(response, request, FLASH_COOKIE, encode_flash(flash))
    return _secure(response)


@router.post(f"{ACTIONS}/promote")
async def promote_canary(request: Request, ref: str) -> Response:
    async def act(api: UiApi, deployment: str, form: dict[str, str]) -> str:
        out = await api.post(f"{deployment}/rollout/promote")
        return f"Promoted the canary: {out['modelPackageId']} is the deployment's model now (a new revision)."

    return await _run(request, ref, "Promote canary", act)


@router.post(f"{ACTIONS}/abort")
async def abort_canary(request: Request, ref: str) -> Response:
    async def act(api: UiApi, deployment: str, form: dict[str, str]) -> str:
        out = await api.post(f"{deployment}/rollout/abort")
        return f"Aborted the canary: the champion {out['modelPackageId']} takes all traffic again."

    return await _run(request, ref, "Abort canary", act)


@router.post(f"{ACTIONS}/challengers/{{package_id}}/promote")
async def promote_challenger(request: Request, ref: str, package_id: str) -> Response:
    async def act(api: UiApi, deployment: str, form: dict[str, str]) -> str:
        change = {k: v for k in ("reason", "note") if (v := form.get(k))}
        out = await api.post(f"{deployment}/challengers/{quote(package_id, safe='')}/promote", change)
        return f"Promoted the challenger: {out['modelPackageId']} is the deployment's model now (a new revision)."

    return await _run(request, ref, "Promote challenger", act)


@router.post(f"{ACTIONS}/challenger-copies")
async def set_challenger_copies(request: Request, ref: str) -> Response:
    async def act(api: UiApi, deployment: str, form: dict[str, str]) -> str:
        text = form.get("percent", "").strip()
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        # what JSON cannot carry as a number goes as text: the API's 422 names the field
        out = await api.patch(deployment, {"challengerCopyPercent": number if math.isfinite(number) else text})
        return f"The challengers get copies of {out['challengerCopyPercent']:g} % of requests now."

    return await _run(request, ref, "Set the challengers' copy share", act)


@router.post(f"{ACTIONS}/rollback")
async def roll_back(request: Request, ref: str) -> Response:
    async def act(api: UiApi, deployment: str, form: dict[str, str]) -> str:
        body: dict[str, object] = {"reason": form.get("reason") or None, "note": form.get("note") or None}
        revision = form.get("revision", "")
        # The API checks the values and names the field; a number that is not one goes as text to get its 422.
        body["revision"] = int(revision) if revision.isdigit() else revision or None
        out = await api.post(f"{deployment}/rollback", {k: v for k, v in body.items() if v is not None})
        return str(out["message"])

    return await _run(request, ref, "Roll back", act)


@router.post(f"{CHANNEL_ACTIONS}/test")
async def send_test_message(request: Request, ref: str) -> Response:
    """`POST /api/v1/notification-channels/{ref}/test`: the API sends it now, in a worker
    thread, and answers with the delivery: sent, or pending with the reason it failed."""

    async def act(api: UiApi, form: dict[str, str]) -> Flash:
        channel = f"/notification-channels/{quote(ref, safe='')}"
        name = (await api.get(channel))["name"]
        sent, text = outcome_message(name, await api.post(f"{channel}/test"))
        return Flash("ok" if sent else "error", text)

    return await _post(request, NOTIFICATIONS_PAGE, "Send test message", act, refuse_forbidden=True)

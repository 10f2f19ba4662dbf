"""CSRF tokens for the UI's forms, bound to the login session; nothing is kept on the server.

At login (or on the first page of a session that has none) the UI sets a random *nonce* in a
second cookie, with the same HttpOnly / SameSite=Strict / Path=/ui attributes as the token's.
A form's token is HMAC-SHA256(nonce, API token). Another site can neither read it (it is
only in our pages) nor compute it (that needs both cookies' values, which scripts cannot
read); a nonce cookie planted from elsewhere is useless without the API token; a new login
or a logout makes old forms worthless. No server secret is needed, so it holds across
control-plane processes and restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CSRF_COOKIE = "deckhand_ui_csrf"
CSRF_FIELD = "csrf"


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def form_token(nonce: str, session_token: str) -> str:
    return hmac.new(nonce.encode("utf-8"), session_token.encode("utf-8"), hashlib.sha256).hexdigest()


def csrf_problem(nonce: str | None, session_token: str, submitted: str | None) -> str | None:
    """Why a form post must be refused, or None when its token is this session's."""
    if not submitted:
        return "The form carried no CSRF token, so it may not come from this UI. Reload the page and try again."
    if not nonce:
        return "This browser session has no CSRF cookie (it was cleared). Reload the page and try again."
    if not hmac.compare_digest(submitted, form_token(nonce, session_token)):
        return (
            "The form's CSRF token does not belong to this session (a page from an earlier login, "
            "or a form from another site). Reload the page and try again."
        )
    return None

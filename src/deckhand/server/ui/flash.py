"""The one-time message shown on a page after an action (promote, abort, roll back, send a test message).

It travels from the action's redirect to the next page in a short-lived cookie rather than
in the URL, so a link from elsewhere cannot put words on our page; the page that shows it
deletes the cookie.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Literal

FLASH_COOKIE = "deckhand_ui_flash"
# Cookies hold about 4 KB; API messages are far shorter, this only bounds a surprise.
MAX_TEXT = 1000


@dataclass(frozen=True)
class Flash:
    kind: Literal["ok", "error"]
    text: str


def encode_flash(flash: Flash) -> str:
    """Cookie-safe text (base64url of JSON): the message may hold quotes, commas and non-ASCII."""
    raw = json.dumps({"kind": flash.kind, "text": flash.text[:MAX_TEXT]}).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_flash(value: str | None) -> Flash | None:
    if not value:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not isinstance(data, dict) or data.get("kind") not in ("ok", "error") or not isinstance(data.get("text"), str):
        return None
    return Flash(data["kind"], data["text"][:MAX_TEXT])

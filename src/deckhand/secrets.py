"""Masking of secrets (API tokens, registry passwords) in logs, status files and events.

Values are registered once when they are read; every log handler that carries
a masking filter and every call to `mask()` then replaces them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from typing import Any


MASK = "****"
_SECRET_KEY_HINTS = ("token", "password", "secret", "apikey", "api_key", "credential")
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        _secrets.add(value)


def is_secret_key(key: str) -> bool:
    """A config key whose value is a secret: it names a token, password, secret or
    credential, or ends in "key" (apiKey, accessKey, private_key). Over-matching (a secret's
    name, say) only hides a value; under-matching would show one."""
    lowered = key.lower()
    return any(hint in lowered for hint in _SECRET_KEY_HINTS) or lowered.endswith("key")


def mask(text: str) -> str:
    for value in _secrets:
        if value in text:
            text = text.replace(value, MASK)
    return text


def mask_mapping(values: Any) -> Any:
    """A copy of a config structure with secret-looking keys and registered values masked."""
    if isinstance(values, dict):
        return {
            k: (MASK if isinstance(k, str) and is_secret_key(k) and v else mask_mapping(v)) for k, v in values.items()
        }
    if isinstance(values, list):
        return [mask_mapping(v) for v in values]
    if isinstance(values, str):
        return mask(values)
    return values


def keep_masked(new: Any, old: Any) -> Any:
    """`new` with every secret value that came back as MASK replaced by the one in `old`:
    a config read (masked) and written back unchanged keeps its secrets."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {
            k: old[k]
            if v == MASK and k in old and isinstance(k, str) and is_secret_key(k)
            else keep_masked(v, old.get(k))
            for k, v in new.items()
        }
    return new


def _masking_filter(record: Any) -> bool:
    """A logging filter (callables are accepted as filters) replacing registered secrets."""
    if _secrets:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
    return True


def install_masking(logger: Any = None) -> None:
    """Add the masking filter to every handler of the (root) logger.

    `logging` is imported here, not at module level: the plugin runner imports this
    module on every subprocess action and must not pay for logging unless it logs."""
    import logging

    target = logger or logging.getLogger()
    for handler in target.handlers:
        if _masking_filter not in handler.filters:
            handler.addFilter(_masking_filter)

"""YAML in and out for the plugin protocol's files, without importing a YAML library
when the text is JSON.

JSON is YAML, so the agent writes action configs as JSON: every YAML reader loads them,
and a runner subprocess skips the cost of `import yaml` on its start. Hand-written YAML
still goes through PyYAML (its C loader when built). Status files are block YAML, one
`key: value` a line as the documented runner writes them (scripts grep `status: passing`),
made by `dumps_block` without PyYAML: plain scalars where YAML reads them back unchanged,
JSON-quoted strings everywhere else."""

from __future__ import annotations

import json

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from typing import Any


def loads(text: str) -> Any:
    """Parse YAML (or JSON) text; raises ValueError (or yaml.YAMLError) when it is neither."""
    stripped = text.lstrip()
    if not stripped:
        return None
    if stripped[0] in "{[":
        try:
            return json.loads(stripped)
        except ValueError:
            pass  # a YAML flow collection such as {a: 1}
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def dumps(values: Any) -> str:
    """Serialise a status or config mapping as JSON (valid YAML), keys sorted, one field a line."""
    return json.dumps(values, indent=4, sort_keys=True, ensure_ascii=False, default=str) + "\n"


# Strings YAML 1.1 reads back as the same string when written plain: a letter, '_' or '/'
# then letters, digits and _./- (sets, not a regex: compiling one costs every runner start),
# and not a word YAML reads as something else. Anything else is JSON-quoted.
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_/")
_PLAIN_CHARS = _LETTERS | frozenset("0123456789.-")
_NOT_PLAIN = frozenset("y n yes no on off true false null nan inf".split())


def _is_plain(text: str) -> bool:
    if not text or text[0] not in _LETTERS or text.lower() in _NOT_PLAIN:
        return False
    return all(c in _PLAIN_CHARS for c in text)


def _unprintable(code: int) -> bool:
    """What a YAML reader refuses raw inside a double-quoted scalar and JSON leaves as is."""
    return 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF)


def dumps_block(values: dict[str, Any], indent: int = 4) -> str:
    """A mapping as block YAML, keys sorted, nested mappings and lists indented."""
    lines: list[str] = []
    _block(values, 0, indent, lines)
    return "\n".join(lines) + "\n"


def _block(value: Any, depth: int, indent: int, lines: list[str]) -> None:
    pad = " " * (depth * indent)
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            item = value[key]
            head = f"{pad}{_scalar(str(key))}:"
            if isinstance(item, (dict, list, tuple)) and item:
                lines.append(head)
                _block(item, depth + 1, indent, lines)
            else:
                lines.append(f"{head} {_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, (dict, list, tuple)) and item:
                lines.append(f"{pad}-")
                _block(item, depth + 1, indent, lines)
            else:
                lines.append(f"{pad}- {_scalar(item)}")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        # YAML 1.1 reads 1e-05 as a string: its floats need a dot.
        return text.replace("e", ".0e", 1) if "e" in text and "." not in text else text
    if isinstance(value, (dict, list, tuple)):
        return "{}" if isinstance(value, dict) else "[]"
    text = value if isinstance(value, str) else str(value)
    if _is_plain(text):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    if quoted.isascii():
        return quoted
    return "".join(_escape(c) for c in quoted)


def _escape(char: str) -> str:
    code = ord(char)
    if not _unprintable(code):
        return char
    # A lone surrogate cannot be written as UTF-8 nor escaped in YAML: it becomes U+FFFD.
    return "\\ufffd" if 0xD800 <= code <= 0xDFFF else f"\\u{code:04x}"

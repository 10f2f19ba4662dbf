"""YAML in and out for the plugin protocol's files, without importing a YAML library
when the text is JSON.

JSON is YAML, so the agent writes action configs as JSON and the runner writes status
files as JSON: every YAML reader loads them, and a runner subprocess skips the cost of
`import yaml` on its start. Hand-written YAML still goes through PyYAML (its C loader when
built)."""

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

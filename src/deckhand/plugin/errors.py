"""Errors raised while reading plugin inputs; each names the field and the fix."""

from __future__ import annotations


class PluginError(Exception):
    """Base class for every error the plugin SDK reports as a failing status."""


class ConfigError(PluginError):
    """An input (action config, private config, deployment info) is missing or malformed."""

    def __init__(self, field: str, problem: str, fix: str | None = None):
        self.field = field
        self.problem = problem
        self.fix = fix
        text = f"{field}: {problem}"
        if fix:
            text += f" ({fix})"
        super().__init__(text)


class PluginLoadError(PluginError):
    """The plugin could not be found, imported, or does not conform to the interface."""


def describe(value: object) -> str:
    """Short description of a bad value for an error message."""
    if value is None:
        return "nothing"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"

"""Named implementations found lazily: the one way deckhand looks up plugins, package
formats, monitoring channels and prediction observers by name.

A `Registry` knows its built-ins as "module:attr" strings (or "module" for a module), so
nothing is imported until a name is asked for; third parties add names through one or
more entry-point groups, scanned only when a name is not a built-in; code may
`register` more at run time (tests, applications). Asking for an unknown name raises an
error that lists the known ones; asking for a built-in whose optional package is missing
raises one that names the extra to install (`deckhand.extras`).

    PLUGINS = Registry("plugin", {"test": "deckhand.plugins.test.plugin:TestPlugin"},
                       groups=("deckhand.plugins",), error=PluginLoadError)
    PLUGINS.load("test")  # imports deckhand.plugins.test.plugin now

Plain classes, no dataclasses: the plugin runner imports this module, and its start-up
time is part of every agent action.
"""

from __future__ import annotations

import importlib

from deckhand import extras

TYPE_CHECKING = False  # importing typing costs every runner start ~2 ms; only type checkers need it
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Generic, TypeVar

    T = TypeVar("T")

    class _Generic(Generic[T]):
        pass

else:
    T = None

    class _Generic:
        """Stands in for Generic[T] at run time: `Registry[X]` is still a valid expression."""

        def __class_getitem__(cls, item: object) -> type:
            return cls


BUILT_IN = "built-in"
REGISTERED = "registered"


class RegistryError(LookupError):
    """An unknown name, or one whose target cannot be loaded (default error of a Registry)."""


class RegistryEntry:
    """One name a registry knows: what it points at and where that came from."""

    __slots__ = ("name", "target", "source")

    def __init__(self, name: str, target: str, source: str) -> None:
        self.name = name
        self.target = target  # "module:attr", or repr() of an object registered at run time
        self.source = source  # "built-in", "registered", or the distribution of the entry point

    def __repr__(self) -> str:
        return f"RegistryEntry({self.name!r}, {self.target!r}, {self.source!r})"


class Registry(_Generic[T]):
    """Names to implementations, resolved on first use.

    `kind` is the noun messages use ("plugin", "format"); `error` builds the exception
    raised (each caller keeps its own error type); `hint` ends the unknown-name message;
    `requirements` maps built-in names to the extra they need (deckhand.extras tables).
    Lookup order: registered at run time, built-in, then each entry-point group in turn.
    """

    def __init__(
        self,
        kind: str,
        builtins: Mapping[str, str],
        *,
        groups: tuple[str, ...] = (),
        requirements: Mapping[str, extras.Requirement] | None = None,
        error: Callable[[str], Exception] = RegistryError,
        hint: str = "",
    ) -> None:
        self.kind = kind
        self.builtins = dict(builtins)
        self.groups = groups
        self.requirements = dict(requirements or {})
        self.error = error
        self.hint = hint
        self._registered: dict[str, str | T] = {}

    # -- what is known (nothing is imported) --------------------------------------------------
    def register(self, name: str, target: str | T) -> None:
        """Add or override `name`: a "module:attr" string or the object itself."""
        self._registered[name] = target

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    def is_builtin(self, name: str) -> bool:
        return name in self.builtins and name not in self._registered

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._registered or name in self.builtins or self._entry_point(name) is not None
        )

    def entries(self) -> list[RegistryEntry]:
        """Registered and built-in names (sorted), then installed entry points (scanned now)."""
        found = {
            name: RegistryEntry(name, target if isinstance(target, str) else repr(target), REGISTERED)
            for name, target in self._registered.items()
        }
        for name, target in self.builtins.items():
            found.setdefault(name, RegistryEntry(name, target, BUILT_IN))
        listed = sorted(found.values(), key=lambda e: e.name)
        for ep in self._entry_points():
            if ep.name not in found:
                found[ep.name] = entry = RegistryEntry(ep.name, ep.value, _distribution(ep))
                listed.append(entry)
        return listed

    def names(self) -> list[str]:
        return sorted(e.name for e in self.entries())

    # -- loading ----------------------------------------------------------------------------
    def load(self, name: str, *, context: str = "") -> T:
        """The implementation `name` stands for, imported now; raises `error` when the name
        is unknown, its extra is not installed, or its target cannot be imported.
        `context` (e.g. the option the name came from) starts every message."""
        prefix = f"{context}: " if context else ""
        if name in self._registered:
            target = self._registered[name]
            return self._import(name, target, prefix, REGISTERED) if isinstance(target, str) else target
        if name in self.builtins:
            needed = extras.missing(self.requirements.get(name))
            if needed is not None:  # say which extra, rather than fail at its first import
                raise self.error(prefix + extras.describe(needed))
            return self._import(name, self.builtins[name], prefix, BUILT_IN)
        ep = self._entry_point(name)
        if ep is not None:
            return self._import(name, ep.value, prefix, f"entry point in group {ep.group!r}")
        raise self.error(prefix + self.unknown(name))

    def unknown(self, name: str) -> str:
        """The message for a name nobody provides: what is known, and how to add one."""
        known = ", ".join(self.names()) or "none"
        message = f"unknown {self.kind} {name!r}; known {self.kind}s: {known}"
        if self.groups:
            message += f" (others are installed as entry points in group {self.groups[0]!r})"
        return f"{message}; {self.hint}" if self.hint else message

    def _import(self, name: str, target: str, prefix: str, source: str) -> T:
        what = f"{prefix}{self.kind} {name!r} ({source}: {target})"
        module_name, _, attr = target.partition(":")
        module_name, attr = module_name.strip(), attr.strip()
        try:
            obj: Any = importlib.import_module(module_name)
        except Exception as exc:
            raise self.error(f"{what}: cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
        for part in attr.split(".") if attr else ():
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise self.error(f"{what}: {module_name} has no attribute {attr}") from None
        return obj  # type: ignore[no-any-return]

    # -- entry points (scanned on each use: a package installed meanwhile is found) ------------
    def _entry_points(self) -> list[Any]:
        if not self.groups:
            return []
        from importlib.metadata import entry_points

        return [ep for group in self.groups for ep in entry_points(group=group)]

    def _entry_point(self, name: str) -> Any:
        return next((ep for ep in self._entry_points() if ep.name == name), None)


def _distribution(ep: Any) -> str:
    return getattr(getattr(ep, "dist", None), "name", None) or "entry point"

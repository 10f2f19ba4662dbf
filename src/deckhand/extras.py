"""Optional dependencies: which feature needs which extra of the deckhand package, and the
check that says so before any work starts.

This table is the one place for it. The base install (`pip install deckhand`) runs the
control plane on SQLite, the agent with the local platform, the prediction server and the
plugin runner; a feature below imports a package that only its extra installs. Every
command that is about to use one checks first, so a missing package is a message naming
the pip command, not a ModuleNotFoundError in the middle of a deployment. The extras
themselves are defined in pyproject.toml; tests/test_extras.py checks that both agree and
that the README's sections install what their commands need.
"""

from __future__ import annotations

import sys


class Requirement:
    """A plain class, not a dataclass: the plugin runner imports this module, and its
    start-up time is part of every agent action."""

    __slots__ = ("feature", "extra", "module")

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature = feature  # as a message names it: "the docker plugin"
        self.extra = extra  # pip install 'deckhand[<extra>]'
        self.module = module  # the import name the extra provides

    def __repr__(self) -> str:
        return f"Requirement({self.feature!r}, extra={self.extra!r}, module={self.module!r})"

    @property
    def install(self) -> str:
        return f"pip install 'deckhand[{self.extra}]'"


_DOCKER = Requirement("the docker plugin", "docker", "docker")
_KUBERNETES = Requirement("the kubernetes plugin", "kubernetes", "kubernetes")
_RABBITMQ = Requirement("an amqp:// monitoring channel (RabbitMQ)", "rabbitmq", "pika")
_POSTGRES = Requirement("a postgresql:// database", "postgres", "psycopg")
_ONNX = Requirement("the onnx model format", "onnx", "onnxruntime")
_S3 = Requirement("an s3:// artifact store", "s3", "boto3")

# Built-in plugins by name (deckhand.plugin.loader.PLUGINS); the others need nothing extra.
PLUGINS: dict[str, Requirement] = {"docker": _DOCKER, "kubernetes": _KUBERNETES}
# Monitoring channels by the scheme of their spec (`deckhand serve --monitoring`, DECKHAND_MONITORING,
# `deckhand tracking-agent --channel`); `spool:` needs nothing extra.
CHANNELS: dict[str, Requirement] = {"amqp": _RABBITMQ, "amqps": _RABBITMQ}
# Control plane databases by URL scheme (`deckhand server --database-url`); SQLite needs nothing extra.
DATABASES: dict[str, Requirement] = {"postgresql": _POSTGRES, "postgres": _POSTGRES}
# Model package formats (deckhand.packages.formats).
FORMATS: dict[str, Requirement] = {"onnx": _ONNX}
# Control plane artifact stores by URL scheme (`deckhand server --artifact-store`); a directory needs nothing extra.
ARTIFACT_STORES: dict[str, Requirement] = {"s3": _S3}

ALL: tuple[Requirement, ...] = (_DOCKER, _KUBERNETES, _RABBITMQ, _POSTGRES, _ONNX, _S3)


class MissingExtra(RuntimeError):
    """A feature was asked for whose optional package is not installed."""

    def __init__(self, requirement: Requirement, context: str = "") -> None:
        self.requirement = requirement
        super().__init__(f"{context}{': ' if context else ''}{describe(requirement)}")


def describe(requirement: Requirement) -> str:
    return (
        f"{requirement.feature} needs the Python package `{requirement.module}`, which is not installed "
        f"for {sys.executable}; install it with: {requirement.install}"
    )


def installed(module: str) -> bool:
    """Whether `module` can be imported here (found, not imported; a directory of that name
    in the current directory, a namespace package, does not count)."""
    try:
        import importlib.util  # only when a built-in with an extra is asked for

        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


def missing(requirement: Requirement | None) -> Requirement | None:
    """`requirement` if its package is not installed, else None."""
    return requirement if requirement is not None and not installed(requirement.module) else None


def require(requirement: Requirement | None, context: str = "") -> None:
    """Raise MissingExtra, prefixed with `context` (e.g. "environment dock"), if it is missing."""
    if missing(requirement) is not None:
        assert requirement is not None
        raise MissingExtra(requirement, context)


def for_plugin(name: str | None) -> Requirement | None:
    return PLUGINS.get(name or "")


def for_channel(spec: str | None) -> Requirement | None:
    scheme = (spec or "").partition(":")[0].strip().lower()
    return CHANNELS.get(scheme)


def for_artifact_store(spec: str | None) -> Requirement | None:
    scheme, sep, _ = (spec or "").partition("://")
    return ARTIFACT_STORES.get(scheme.strip().lower()) if sep else None


def for_database_url(url: str | None) -> Requirement | None:
    scheme = (url or "").partition(":")[0].partition("+")[0].strip().lower()  # postgresql+psycopg://
    return DATABASES.get(scheme)

"""The Docker engine connection: one client per action, and errors that say what to do."""

from __future__ import annotations

from typing import Any

from deckhand import extras
from deckhand.plugin.errors import PluginError

# API timeout (s) for one call; builds and waits have their own deadlines.
API_TIMEOUT = 30


class EngineUnreachable(PluginError):
    """The Docker engine does not answer."""


class EngineError(PluginError):
    """The engine answered with an error we cannot act on."""


def unreachable_message(docker_host: str, exc: BaseException) -> str:
    hint = (
        "start it (deckhand's own engine: sudo scripts/docker-engine start) or set dockerHost / DOCKER_HOST "
        "to the engine's socket"
    )
    return f"Docker engine at {docker_host} is unreachable ({type(exc).__name__}: {_short(exc)}); {hint}"


def connect(docker_host: str) -> Any:
    """A DockerClient that has answered a ping; EngineUnreachable otherwise."""
    try:
        import docker
    except ImportError:  # pragma: no cover - the `docker` extra is missing (the loader checks first)
        raise EngineError(extras.describe(extras.PLUGINS["docker"])) from None
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=API_TIMEOUT)
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError...
        raise EngineUnreachable(unreachable_message(docker_host, exc)) from None
    return client


def is_connection_error(exc: BaseException) -> bool:
    import requests

    return isinstance(exc, requests.exceptions.ConnectionError | ConnectionError | FileNotFoundError)


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."


def describe_api_error(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or _short(exc))

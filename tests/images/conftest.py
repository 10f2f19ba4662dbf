"""The image tests use the shared Docker fixtures (tests/docker_fixtures.py, loaded by
tests/conftest.py); the names below stay importable as `from .conftest import ...`."""

from tests.docker_fixtures import (  # noqa: F401
    BUILD_TIMEOUT_S,
    ENGINE,
    ROOT,
    VERSION,
    Engine,
    http,
    wait_for,
)

"""Fixtures for the Docker plugin tests: the shared engine (tests/docker_fixtures.py), the
images the plugin runs, demo model packages, and plugin configs that cannot collide with
another test or session (unique environment id, name prefix, network and free ports).
Everything an environment created is removed at teardown, found by its labels."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.request_loop import RequestLoop  # noqa: F401 - the docker tests import it from here

from deckhand.packages.demo import sample_rows, train_demo_package
from deckhand.plugins.docker import names
from deckhand.testing import free_port, wait_until  # noqa: F401 - the docker tests import them from here

docker = pytest.importorskip("docker", reason="the Docker SDK is needed: pip install 'deckhand[docker]'")

ROWS = sample_rows(2)
# Per session, so one session's clean-up never removes an image another session is using.
TEST_IMAGE_REPOSITORY = f"dh-test-model-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def docker_images(build_image) -> dict[str, str]:
    """The images the plugin runs, built (or found cached) once per session."""
    return {"pps": build_image("pps", allow_existing=True), "proxy": build_image("proxy", allow_existing=True)}


@pytest.fixture(scope="session")
def client(engine_host: str) -> Iterator[Any]:
    sdk = docker.DockerClient(base_url=engine_host, timeout=60)
    yield sdk
    # The model images this session built (TEST_IMAGE_REPOSITORY) go at the end of it.
    for image in sdk.images.list(name=TEST_IMAGE_REPOSITORY):
        try:
            sdk.images.remove(image.id, force=True)
        except docker.errors.APIError:
            pass
    sdk.close()


@pytest.fixture(scope="session")
def packages(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("docker-pkgs")
    found = {}
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        train_demo_package(root / f"{name}.dhpkg", seed=seed)
        found[name] = root / f"{name}.dhpkg"
    broken = root / "broken.dhpkg"
    broken.write_bytes(b"this is not a model package\n")
    found["broken"] = broken
    # A valid package (the control plane accepts it) whose model cannot load: the server exits.
    # It declares the demo model's target and class labels, so replacing that model with it
    # passes the compatibility check and reaches the agent.
    hook = root / "failing-src"
    hook.mkdir()
    (hook / "custom.py").write_text(
        "def load_model(code_dir):\n    raise RuntimeError('this model cannot load (test fixture)')\n\n\n"
        "def score(data, model, **kwargs):\n    return data\n"
    )
    found["failing"] = root / "failing.dhpkg"
    subprocess.run(
        [sys.executable, "-c", "import sys; from deckhand.cli import main; sys.exit(main())", "package", "build",
         str(hook), "--format", "python", "--target-type", "multiclass",
         "--class-labels", "setosa,versicolor,virginica", "-o", str(found["failing"])],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return found


@dataclass
class DockerEnv:
    """One test environment: its plugin config and what to clean up."""

    engine_host: str
    client: Any
    env_id: str = field(default_factory=lambda: f"dh-test-{secrets.token_hex(3)}")
    web_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    # The environment id the plugin labels with (the control plane's id in end-to-end tests).
    labelled_id: str | None = None

    @property
    def prefix(self) -> str:
        return f"{self.env_id}_"

    @property
    def network(self) -> str:
        return f"{self.env_id}-net"

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "MLOPS_BOSUN_PRED_ENV_ID": self.env_id,
            "dockerHost": self.engine_host,
            "dockerNetwork": self.network,
            "containerNamePrefix": self.prefix,
            "generatedImagePrefix": TEST_IMAGE_REPOSITORY,
            "traefikPortMapping": {80: self.web_port, 8080: self.api_port},
            "startTimeoutSeconds": 60,
            **extra,
        }

    def plugin(self, pe_deployments: list[str] | None = None, **extra: Any):
        from deckhand.plugins.docker.plugin import DockerPlugin

        pe_info = {"id": self.env_id, "deployments": pe_deployments or []}
        return DockerPlugin(self.config(**extra), pe_info=pe_info)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def containers(self) -> list[Any]:
        labelled = self.labelled_id or self.env_id
        return self.client.containers.list(all=True, filters={"label": names.label_filter(labelled)})

    def networks(self) -> list[Any]:
        return [n for n in self.client.networks.list(names=[self.network]) if n.name == self.network]

    def routers(self) -> list[str]:
        """Routers of the Docker provider in this environment's proxy ([] if it is gone)."""
        try:
            status, body = get_json(f"http://127.0.0.1:{self.api_port}/api/http/routers")
        except OSError:
            return []
        return [r["name"] for r in body if r.get("provider") == "docker"] if status == 200 else []

    def cleanup(self) -> None:
        for container in self.containers():
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
        for network in self.networks():
            try:
                network.remove()
            except docker.errors.APIError:
                pass


@pytest.fixture
def denv(engine_host: str, client, docker_images) -> Iterator[DockerEnv]:
    env = DockerEnv(engine_host, client)
    try:
        yield env
    finally:
        env.cleanup()


def get_json(url: str, timeout: float = 3.0) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def predict(url: str, rows: list[dict[str, float]] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    body = json.dumps(rows or ROWS).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError) as exc:  # refused, reset: no HTTP answer at all
        return 0, f"{type(exc).__name__}: {exc}"

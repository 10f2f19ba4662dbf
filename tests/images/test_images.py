"""Every image builds with `make -C images <name>` and is tagged with the project version."""

from __future__ import annotations

import pytest

from .conftest import VERSION, Engine

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]

# Build order: what each image is FROM comes first.
IMAGES = ["base", "python", "pps", "agent", "tracking-agent", "control-plane", "rabbitmq", "proxy"]


@pytest.mark.parametrize("name", IMAGES)
def test_image_builds_with_version_tag(engine: Engine, image, built: dict, name: str) -> None:
    ref = image(name)
    assert ref == f"deckhand-{name}:{VERSION}"
    info = engine.inspect(ref)
    assert ref in info["RepoTags"]
    labels = info["Config"]["Labels"] or {}
    assert labels.get("org.opencontainers.image.version") == VERSION
    size_mb = info["Size"] / 1e6
    print(f"{ref}: built in {built[name]:.1f} s, {size_mb:.0f} MB")


def test_rebuild_is_cached(engine: Engine, image) -> None:
    """With everything built, making the Python images again takes seconds."""
    image("pps")
    seconds = engine.make("pps")
    assert seconds < 120, f"a cached rebuild of deckhand-pps took {seconds:.0f} s"


def test_base_has_python_and_venv(engine: Engine, image) -> None:
    out = engine.docker(
        "run",
        "--rm",
        image("base"),
        "sh",
        "-c",
        "python3 -c 'import sys, ssl, venv; print(sys.version_info[:2])'",
    )
    assert out == "(3, 11)"


def test_python_images_share_the_venv_layers(engine: Engine, image) -> None:
    layers = {
        name: engine.inspect(image(name))["RootFS"]["Layers"]
        for name in ("python", "pps", "agent", "tracking-agent", "control-plane")
    }
    for name in ("pps", "agent", "tracking-agent", "control-plane"):
        assert layers[name][: len(layers["python"])] == layers["python"], name


def test_agent_image_runs_deckhand_agent(engine: Engine, image) -> None:
    ref = image("agent")
    info = engine.inspect(ref)
    assert info["Config"]["Entrypoint"] == ["deckhand", "agent"]
    out = engine.docker("run", "--rm", ref, "--help")
    assert "Usage" in out


def test_tracking_agent_image(engine: Engine, image) -> None:
    ref = image("tracking-agent")
    info = engine.inspect(ref)
    assert info["Config"]["Entrypoint"] == ["deckhand", "tracking-agent"]
    commands = engine.docker("run", "--rm", "--entrypoint", "deckhand", ref, "--help")
    assert "tracking-agent" in commands, commands
    assert "Usage" in engine.docker("run", "--rm", ref, "--help")


def test_control_plane_image_runs_deckhand_server_as_non_root(engine: Engine, image) -> None:
    ref = image("control-plane")
    info = engine.inspect(ref)
    assert info["Config"]["Entrypoint"] == ["deckhand", "server"]
    assert info["Config"]["Cmd"] == ["--host", "0.0.0.0", "--port", "8000"]
    assert info["Config"]["User"] == "deckhand"
    out = engine.docker("run", "--rm", ref, "--help")
    assert "--artifact-store" in out  # and the s3 extra is installed:
    engine.docker("run", "--rm", "--entrypoint", "python", ref, "-c", "import boto3, psycopg")

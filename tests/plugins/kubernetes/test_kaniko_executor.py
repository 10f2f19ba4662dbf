"""The Kaniko executor image (deckhand-kaniko) building a model image the way the build
Job does, but in a container on deckhand's Docker engine, pushing to the test registry.
This runs whatever node the test environment has (kwok included), so the executor itself
is always exercised."""

from __future__ import annotations

import subprocess
import time

import pytest

from deckhand.plugins.kubernetes import builder, manifests
from deckhand.plugins.kubernetes.config import KubernetesConfig

pytestmark = [pytest.mark.k8s, pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]


def test_kaniko_builds_and_pushes_a_model_image(k8s_env, registry_images, engine_host, demo_package, tmp_path) -> None:
    registry = k8s_env.registry  # 127.0.0.1:<port> from this host (the container shares its network)
    base = f"{registry}/{registry_images.pps.split('/', 1)[1]}"
    kaniko = f"{registry}/{registry_images.kaniko.split('/', 1)[1]}"
    image = f"{registry}/deckhand/kaniko-on-docker:m-{int(time.time())}"
    context = tmp_path / "context"
    context.mkdir()
    (context / "model.dhpkg").write_bytes(demo_package.read_bytes())
    # the same two lines the build Job's init container writes
    (context / "Dockerfile").write_text(f"FROM {base}\nCOPY model.dhpkg {manifests.PACKAGE_PATH}\n")
    cfg = KubernetesConfig.from_mapping({"insecureRegistries": [registry]})
    assert builder.image_exists(image, cfg) is False
    argv = [
        "docker", "run", "--rm", "--network", "host", "-v", f"{context}:/workspace",
        kaniko, "--dockerfile=/workspace/Dockerfile", "--context=dir:///workspace",
        f"--destination={image}", f"--insecure-registry={registry}", "--snapshot-mode=redo",
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(argv, env={"DOCKER_HOST": engine_host, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Pushed" in proc.stdout + proc.stderr
    assert builder.image_exists(image, cfg) is True
    print(f"\nkaniko on docker: built and pushed {image} in {seconds:.1f} s")

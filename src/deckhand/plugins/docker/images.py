"""Model images: `<generatedImagePrefix>:m-<modelId>` = ppsBaseImage + the model package.

One image per model (not per deployment), so two deployments of one model share it. The
build context (a Dockerfile and the package) is streamed to the engine as a tar by the
SDK; with the base image present the build is one COPY layer. An existing image is
reused when its package digest label matches the artifact.
"""

from __future__ import annotations

import io
import logging
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deckhand.plugins.docker import names
from deckhand.plugins.docker.config import PPS_BASE_IMAGE
from deckhand.plugins.docker.engine import EngineError, describe_api_error

log = logging.getLogger("deckhand.plugins.docker")


@dataclass(frozen=True)
class ModelImage:
    reference: str
    built: bool
    seconds: float


def dockerfile(base_image: str, model_id: str, package_sha: str) -> str:
    return (
        f"FROM {base_image}\n"
        f"COPY --chown=deckhand:deckhand model.dhpkg {names.MODEL_PACKAGE_PATH}\n"
        f'LABEL {names.LABEL_MODEL}="{model_id}" {names.LABEL_PACKAGE_SHA}="{package_sha}"\n'
    )


def _context(artifact: Path, text: str) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
        with open(artifact, "rb") as fh:
            info = tar.gettarinfo(fileobj=fh, arcname="model.dhpkg")
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "root", "root"
            tar.addfile(info, fh)
    buffer.seek(0)
    return buffer


def ensure_model_image(client: Any, repository: str, base_image: str, model_id: str, artifact: Path) -> ModelImage:
    """The image for this model, built now if missing or built from another package."""
    import docker.errors

    from deckhand.packages.container import file_sha256  # here: deckhand.packages imports numpy

    reference = f"{repository}:{names.image_tag(model_id)}"
    started = time.monotonic()
    package_sha = file_sha256(artifact)
    try:
        existing = client.images.get(reference)
        if (existing.labels or {}).get(names.LABEL_PACKAGE_SHA) == package_sha:
            return ModelImage(reference, False, time.monotonic() - started)
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.get(base_image)
    except docker.errors.ImageNotFound:
        raise EngineError(
            f"{PPS_BASE_IMAGE} {base_image} is not on the engine; build it (make -C images pps) or point "
            f"{PPS_BASE_IMAGE} at an image the engine has"
        ) from None
    context = _context(artifact, dockerfile(base_image, model_id, package_sha))
    try:
        client.images.build(
            fileobj=context, custom_context=True, tag=reference, rm=True, forcerm=True, pull=False, timeout=300
        )
    except docker.errors.BuildError as exc:
        tail = " | ".join(str(line.get("stream", line.get("error", ""))).strip() for line in list(exc.build_log)[-5:])
        raise EngineError(f"building {reference} FROM {base_image} failed: {exc.msg} ({tail})") from None
    except docker.errors.APIError as exc:
        raise EngineError(f"building {reference} failed: {describe_api_error(exc)}") from None
    seconds = time.monotonic() - started
    log.info("event=image_built image=%s model_id=%s seconds=%.2f", reference, model_id, seconds)
    return ModelImage(reference, True, seconds)

"""Where the control plane keeps model package files: one interface (`ArtifactStore`), two
back-ends chosen by `deckhand server --artifact-store` (DECKHAND_ARTIFACT_STORE):

- a directory (the default, `<data_dir>/artifacts`): `LocalArtifactStore`;
- `s3://bucket/prefix`, any S3-compatible object store: `S3ArtifactStore` (extra `s3`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deckhand.server.services.artifacts.base import (
    STALE_UPLOAD_SECONDS,
    Artifact,
    ArtifactDamaged,
    ArtifactStore,
    ArtifactStoreError,
    Upload,
)
from deckhand.server.services.artifacts.local import LocalArtifactStore

if TYPE_CHECKING:
    from deckhand.server.settings import ServerSettings

__all__ = [
    "STALE_UPLOAD_SECONDS",
    "Artifact",
    "ArtifactDamaged",
    "ArtifactStore",
    "ArtifactStoreError",
    "LocalArtifactStore",
    "S3Location",
    "Upload",
    "open_artifact_store",
    "parse_s3_url",
]

STORE_SETTING = "--artifact-store (DECKHAND_ARTIFACT_STORE)"
S3_SCRATCH_DIR = "artifact-scratch"  # under data_dir: upload temp files, fetched packages, mixes


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str


def parse_s3_url(url: str) -> S3Location:
    """`s3://bucket[/prefix]`; a ValueError that says what is wrong otherwise."""
    rest = url[len("s3://") :] if url.lower().startswith("s3://") else None
    if rest is None:
        raise ValueError(f"{STORE_SETTING}: {url!r} is not an s3:// URL; expected s3://BUCKET[/PREFIX]")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"{STORE_SETTING}: {url!r} names no bucket; expected s3://BUCKET[/PREFIX]")
    return S3Location(bucket=bucket, prefix=prefix.strip("/"))


def check_store_spec(spec: str | None) -> str | None:
    """Refuse early what no back-end takes: an s3:// URL without a bucket, another scheme."""
    if spec is None or spec == "":
        return None
    scheme, sep, _ = spec.partition("://")
    if sep and scheme.lower() == "s3":
        parse_s3_url(spec)
    elif sep and scheme.lower() != "file":
        raise ValueError(f"{STORE_SETTING}: unknown scheme {scheme!r} in {spec!r}; expected a directory or s3://BUCKET")
    return spec


def open_artifact_store(settings: ServerSettings) -> ArtifactStore:
    """The store `settings.artifact_store` names (not yet started: see ArtifactStore.start)."""
    spec = settings.artifact_store
    if spec and spec.lower().startswith("s3://"):
        from deckhand.server.services.artifacts.s3 import S3ArtifactStore

        location = parse_s3_url(spec)
        return S3ArtifactStore(
            location.bucket,
            location.prefix,
            scratch=settings.data_dir / S3_SCRATCH_DIR,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        )
    root = Path(spec.removeprefix("file://")).expanduser() if spec else settings.artifacts_dir
    return LocalArtifactStore(root)

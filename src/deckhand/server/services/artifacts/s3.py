"""Model package files in an S3-compatible bucket: `s3://<bucket>/<prefix>/<package id>.pkg`.

The upload is still spooled to a local temp file (the manifest is read from it) under a
scratch directory of data_dir, then sent with a managed multipart upload whose part size
and concurrency are bounded, so memory stays small whatever the package size. The sha256
goes into the object's metadata. Downloads stream the object; mixes need local files, so
their members are fetched into a per-replica cache under the scratch directory, verified.

Endpoint, region and credentials come from `deckhand server --s3-endpoint-url/--s3-region`
or the standard AWS variables and configuration; credentials never pass through here.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deckhand.fsutil import private_dir
from deckhand.packages.container import file_sha256
from deckhand.server.services.artifacts.base import (
    CHUNK,
    STALE_UPLOAD_SECONDS,
    Artifact,
    ArtifactDamaged,
    ArtifactStoreError,
    Upload,
    remove_stale_uploads,
    temp_upload_path,
)

log = logging.getLogger(__name__)

# Parts of 16 MiB, 4 at a time: tens of MiB in flight for any package size. Below 64 MiB
# one PutObject does it.
MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
MAX_CONCURRENCY = 4
SHA256_METADATA = "sha256"  # x-amz-meta-sha256
ENV_HELP = (
    "set the endpoint with --s3-endpoint-url or AWS_ENDPOINT_URL (AWS_ENDPOINT_URL_S3), the region with "
    "--s3-region or AWS_REGION, and the credentials with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(or an AWS profile)"
)


def _client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3  # type: ignore[import-untyped,unused-ignore]
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

    config = Config(
        # S3-compatible servers (SeaweedFS, MinIO, Ceph) are addressed by path, not by a
        # bucket subdomain that their DNS does not have.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        connect_timeout=10,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3ArtifactStore:
    def __init__(
        self, bucket: str, prefix: str, scratch: Path, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped,unused-ignore]

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.scratch = Path(scratch)
        self._cache = self.scratch / "packages"
        for directory in (self.scratch, self._cache, self.mixes_dir):
            private_dir(directory)
        try:
            self._client = _client(endpoint_url, region)
        except Exception as exc:  # a named profile that is not there, a malformed endpoint URL
            raise ArtifactStoreError(f"cannot use the artifact store {self.description}: {explain(exc)}") from None
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=PART_SIZE,
            max_concurrency=MAX_CONCURRENCY,
            use_threads=True,
        )

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def description(self) -> str:
        return f"{self.url} at {self.endpoint_url or 'AWS S3'}"

    @property
    def mixes_dir(self) -> Path:
        return self.scratch / "mixes"

    @property
    def key_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def key(self, package_id: str) -> str:
        return f"{self.key_prefix}{package_id}.pkg"

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        remove_stale_uploads(self.scratch)
        self.check()
        self.abort_stale_multipart_uploads()

    def check(self) -> None:
        """Raise ArtifactStoreError naming the bucket, the endpoint and the fix when the bucket
        cannot be listed (unreachable, no or wrong credentials, no such bucket)."""
        try:
            self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.key_prefix, MaxKeys=1)
        except Exception as exc:  # botocore's many kinds: each is explained the same way
            raise ArtifactStoreError(f"cannot use the artifact store {self.description}: {explain(exc)}") from None

    def abort_stale_multipart_uploads(self, older_than: float = STALE_UPLOAD_SECONDS) -> list[str]:
        """Abort the multipart uploads under the prefix started more than `older_than` seconds
        ago: a control plane killed mid-commit leaves its parts, billed, behind. A younger one
        may be another replica's commit in progress."""
        cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than)
        aborted: list[str] = []
        try:
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.key_prefix
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < cutoff:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        aborted.append(upload["Key"])
        except Exception as exc:  # housekeeping: the store works without it
            log.warning("artifact store: could not abort stale multipart uploads store=%s error=%s", self.url, exc)
        if aborted:
            log.info("artifact store: aborted stale multipart uploads store=%s count=%d", self.url, len(aborted))
        return aborted

    # -- packages ------------------------------------------------------------------------

    def new_upload(self) -> Upload:
        return Upload(temp_upload_path(self.scratch))

    def _failed(self, doing: str, exc: BaseException) -> ArtifactStoreError:
        return ArtifactStoreError(f"the artifact store {self.description} failed {doing}: {explain(exc)}")

    def commit(self, upload: Upload, package_id: str) -> None:
        try:
            self._client.upload_file(
                str(upload.path),
                self.bucket,
                self.key(package_id),
                ExtraArgs={"Metadata": {SHA256_METADATA: upload.sha256.hexdigest()}},
                Config=self._transfer,
            )
        except Exception as exc:
            raise self._failed(f"to store package {package_id}", exc) from exc
        finally:
            upload.path.unlink(missing_ok=True)

    def open(self, package_id: str) -> Artifact | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self.key(package_id))
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise self._failed(f"to read package {package_id}", exc) from exc
        return Artifact(size=int(response["ContentLength"]), _chunks=_body_chunks(response["Body"]))

    def local_copy(self, package_id: str, sha256: str) -> Path | None:
        target = self._cache / f"{package_id}.pkg"
        if target.is_file():  # verified when it was fetched
            return target
        tmp = temp_upload_path(self.scratch)  # same name as an upload: removed if we die
        try:
            self._client.download_file(self.bucket, self.key(package_id), str(tmp), Config=self._transfer)
            found = file_sha256(tmp)
            if found != sha256:
                raise ArtifactDamaged(
                    f"the artifact of {package_id} in {self.url} hashes to {found}, not to the recorded {sha256}"
                )
            os.replace(tmp, target)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            if _is_missing(exc):
                return None
            if isinstance(exc, ArtifactDamaged):
                raise
            raise self._failed(f"to fetch package {package_id}", exc) from exc
        return target

    def keep_local_copies(self, package_ids: set[str]) -> None:
        for path in self._cache.glob("*.pkg"):
            if path.stem not in package_ids:
                path.unlink(missing_ok=True)

    def delete(self, package_id: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.key(package_id))
        except Exception as exc:
            raise self._failed(f"to delete package {package_id}", exc) from exc
        (self._cache / f"{package_id}.pkg").unlink(missing_ok=True)


def _body_chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_missing(exc: BaseException) -> bool:
    return _error_code(exc) in ("NoSuchKey", "404", "NotFound")


def explain(exc: BaseException) -> str:
    """What went wrong and what to do, naming settings, never their secret values."""
    from botocore import exceptions as bx  # type: ignore[import-untyped,unused-ignore]

    code = _error_code(exc)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return f"no S3 credentials found; {ENV_HELP}"
    if isinstance(exc, bx.ProfileNotFound):
        return f"{exc} (AWS_PROFILE names it; the profiles are in ~/.aws/config, or AWS_CONFIG_FILE); {ENV_HELP}"
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
        return f"the endpoint cannot be reached ({type(exc).__name__}); {ENV_HELP}"
    if code in ("NoSuchBucket",):
        return "the bucket does not exist; create it, or name another in --artifact-store (DECKHAND_ARTIFACT_STORE)"
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken"):
        return (
            f"access denied ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that the identity "
            "may ListBucket, GetObject, PutObject, DeleteObject and the multipart upload actions on the bucket"
        )
    if isinstance(exc, ValueError):  # e.g. a malformed endpoint URL
        return f"{exc}; {ENV_HELP}"
    return f"{type(exc).__name__}: {code or exc}; {ENV_HELP}"

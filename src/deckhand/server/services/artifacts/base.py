"""What every artifact store offers the control plane, and the parts they share: the upload
spooled to a local temp file while hashing, and the cleanup of temp files left by dead uploads.

A package upload is always written to a local file first: its manifest is read from it
(random access) before anything is stored. A store then takes the finished file in
`commit`; downloads read it back through `open`, and mixes need a local copy (`local_copy`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

# An upload's temp file names the host and process writing it. A starting replica removes the
# ones of dead processes on its own host at once; another host's only once untouched this long
# (replicas on other machines may share the directory, their uploads in progress).
STALE_UPLOAD_SECONDS = 3600
_HOST = socket.gethostname().replace("-", "_")[:40] or "host"
CHUNK = 1024 * 1024


class ArtifactStoreError(RuntimeError):
    """The store cannot be used as configured; the message names the setting and the fix."""


class ArtifactDamaged(RuntimeError):
    """A stored artifact does not hash to the checksum recorded for it."""


@dataclass
class Artifact:
    """One stored package opened for download: a local file (`path`), or a stream of chunks."""

    size: int
    path: Path | None = None
    _chunks: Iterator[bytes] | None = field(default=None, repr=False)

    def chunks(self) -> Iterator[bytes]:
        if self._chunks is not None:
            return self._chunks
        assert self.path is not None
        return _file_chunks(self.path)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


class ArtifactStore(Protocol):
    """Where model package files live: a local directory, or an S3 bucket (`open_artifact_store`)."""

    @property
    def description(self) -> str:
        """What logs and error messages name the store by (never a credential)."""
        ...

    @property
    def mixes_dir(self) -> Path:
        """A local directory for the mixes this replica builds (services.mixes)."""
        ...

    def start(self) -> None:
        """At control plane start: remove what dead uploads left; check the store is usable."""

    def new_upload(self) -> Upload:
        """A local temp file to stream an upload into."""
        ...

    def commit(self, upload: Upload, package_id: str) -> None:
        """Store the finished upload under `package_id`; the temp file is gone afterwards."""

    def open(self, package_id: str) -> Artifact | None:
        """The stored package for download, or None when it is missing."""

    def local_copy(self, package_id: str, sha256: str) -> Path | None:
        """A local file of the package (fetched and verified against `sha256` if need be), or
        None when it is missing. Raises ArtifactDamaged when it does not match."""

    def keep_local_copies(self, package_ids: set[str]) -> None:
        """Drop the local copies of other packages than these (no-op where the store is local)."""

    def delete(self, package_id: str) -> None:
        """Remove the package; no error when it is already gone."""


class Upload:
    """A temp file being written, with its running sha256 and size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha256 = hashlib.sha256()
        self.size = 0
        # 0600: a package is the code a prediction server will run
        self._handle: BinaryIO | None = os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb")

    def write(self, chunk: bytes) -> None:
        assert self._handle is not None
        self._handle.write(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)

    def finish(self) -> str:
        """Flush to disk; returns the hex digest."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
        return self.sha256.hexdigest()

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.unlink(missing_ok=True)


def temp_upload_path(directory: Path) -> Path:
    return directory / f".upload-{_HOST}-{os.getpid()}-{secrets.token_hex(8)}.tmp"


def _owner_is_dead(name: str) -> bool:
    """Whether `.upload-<host>-<pid>-<token>.tmp` was written by a process of this host that
    no longer runs."""
    parts = name.removeprefix(".upload-").split("-")
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_stale_uploads(directory: Path) -> None:
    for stale in directory.glob(".upload-*.tmp"):
        try:
            if _owner_is_dead(stale.name) or time.time() - stale.stat().st_mtime > STALE_UPLOAD_SECONDS:
                stale.unlink(missing_ok=True)
        except FileNotFoundError:  # finished or removed by another replica meanwhile
            pass

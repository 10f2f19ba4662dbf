"""Model package files on disk: `<data_dir>/artifacts/<package id>.pkg`.

Uploads are streamed to a temp file in the same directory while hashing, then renamed
into place, so a half-written file never has a package's name.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from pathlib import Path
from typing import BinaryIO

from deckhand.fsutil import private_dir

# An upload's temp file names the host and process writing it. A starting replica removes the
# ones of dead processes on its own host at once; another host's only once untouched this long
# (replicas on other machines may share the directory, their uploads in progress).
STALE_UPLOAD_SECONDS = 3600
_HOST = socket.gethostname().replace("-", "_")[:40] or "host"


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


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        private_dir(self.root)

    def path_for(self, package_id: str) -> Path:
        return self.root / f"{package_id}.pkg"

    def new_upload(self) -> Upload:
        return Upload(self.root / f".upload-{_HOST}-{os.getpid()}-{secrets.token_hex(8)}.tmp")

    def remove_stale_uploads(self) -> None:
        for stale in self.root.glob(".upload-*.tmp"):
            try:
                if _owner_is_dead(stale.name) or time.time() - stale.stat().st_mtime > STALE_UPLOAD_SECONDS:
                    stale.unlink(missing_ok=True)
            except FileNotFoundError:  # finished or removed by another replica meanwhile
                pass

    def commit(self, upload: Upload, package_id: str) -> Path:
        target = self.path_for(package_id)
        os.replace(upload.path, target)
        return target

    def delete(self, package_id: str) -> None:
        self.path_for(package_id).unlink(missing_ok=True)


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

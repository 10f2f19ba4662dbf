"""Model package files in a local directory (the default): `<data_dir>/artifacts/<package id>.pkg`.

Uploads are streamed to a temp file in the same directory while hashing, then renamed
into place, so a half-written file never has a package's name.
"""

from __future__ import annotations

import os
from pathlib import Path

from deckhand.fsutil import private_dir
from deckhand.server.services.artifacts.base import (
    Artifact,
    Upload,
    remove_stale_uploads,
    temp_upload_path,
)


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        private_dir(self.root)

    @property
    def description(self) -> str:
        return str(self.root)

    @property
    def mixes_dir(self) -> Path:
        return self.root / "mixes"

    def path_for(self, package_id: str) -> Path:
        return self.root / f"{package_id}.pkg"

    def start(self) -> None:
        self.remove_stale_uploads()

    def new_upload(self) -> Upload:
        return Upload(temp_upload_path(self.root))

    def remove_stale_uploads(self) -> None:
        remove_stale_uploads(self.root)

    def commit(self, upload: Upload, package_id: str) -> None:
        os.replace(upload.path, self.path_for(package_id))

    def open(self, package_id: str) -> Artifact | None:
        path = self.path_for(package_id)
        try:
            return Artifact(size=path.stat().st_size, path=path)
        except FileNotFoundError:
            return None

    def local_copy(self, package_id: str, sha256: str) -> Path | None:
        # The stored file itself: verified when it was uploaded, as a download is by its client.
        path = self.path_for(package_id)
        return path if path.is_file() else None

    def keep_local_copies(self, package_ids: set[str]) -> None:
        pass  # the local copies are the packages

    def delete(self, package_id: str) -> None:
        self.path_for(package_id).unlink(missing_ok=True)

"""The artifact directory may be shared by replicas: a starting one removes only the temp
files of uploads that died, never another replica's upload in progress."""

from __future__ import annotations

import os
import time
from pathlib import Path

from deckhand.server.services.artifacts import STALE_UPLOAD_SECONDS, ArtifactStore


def test_only_stale_uploads_are_removed(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    in_progress = store.new_upload()
    in_progress.write(b"partial")
    dead = store.new_upload()
    dead.finish()
    old = time.time() - STALE_UPLOAD_SECONDS - 60
    os.utime(dead.path, (old, old))

    store.remove_stale_uploads()

    assert in_progress.path.exists() and not dead.path.exists()
    in_progress.discard()

"""The artifact directory may be shared by replicas: a starting one removes only the temp
files of uploads that died, never another replica's upload in progress."""

from __future__ import annotations

from pathlib import Path

from deckhand.server.services.artifacts import LocalArtifactStore


def test_uploads_of_dead_processes_of_this_host_are_removed_at_once(tmp_path: Path) -> None:
    """A control plane killed mid-upload leaves its temp file; the next start on the same host
    removes it, fresh as it is (the fault tests kill it so)."""
    import subprocess
    import sys

    store = LocalArtifactStore(tmp_path / "artifacts")
    child = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; from deckhand.server.services.artifacts "
         "import LocalArtifactStore as S; u = S(Path(sys.argv[1])).new_upload(); u.write(b'x'); u.finish(); "
         "print(u.path)", str(store.root)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    left = Path(child.stdout.strip())
    mine = store.new_upload()
    mine.write(b"partial")
    other_host = store.root / ".upload-elsewhere-1-0123456789abcdef.tmp"
    other_host.write_bytes(b"another machine's upload")
    assert left.exists()

    store.remove_stale_uploads()

    assert not left.exists() and mine.path.exists() and other_host.exists()
    mine.discard()

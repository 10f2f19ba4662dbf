"""The agent's package cache: partial downloads of a dead agent do not outlive its restart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deckhand.agent.artifacts import ArtifactCache


def test_partial_downloads_of_dead_agents_are_removed_at_start(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # a process that lives on
    try:
        names = {
            "dead": f".abc.dhpkg.{dead.pid}.part",
            "ours": f".abc.dhpkg.{os.getpid()}.part",  # another environment of this agent downloading
            "live": f".abc.dhpkg.{live.pid}.part",
            "whole": "abc.dhpkg",
            "other": ".notes.part",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"x")
        ArtifactCache(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for k, n in names.items() if k != "dead")
    finally:
        live.kill()
        live.wait()


def test_a_missing_cache_dir_is_fine(tmp_path: Path) -> None:
    ArtifactCache(tmp_path / "not-yet")
    assert not (tmp_path / "not-yet").exists()


def test_cached_mixes_older_than_an_hour_are_removed(tmp_path: Path) -> None:
    import os
    import time

    from deckhand.agent.artifacts import remove_old_mixes

    old, fresh, package = tmp_path / "mix-aaaa.dhpkg", tmp_path / "mix-bbbb.dhpkg", tmp_path / "f00d.dhpkg"
    for path in (old, fresh, package):
        path.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(package, (two_hours_ago, two_hours_ago))  # a plain package stays however old
    assert remove_old_mixes(tmp_path) == ["mix-aaaa.dhpkg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f00d.dhpkg", "mix-bbbb.dhpkg"]

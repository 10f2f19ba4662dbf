"""The local cache of model packages: downloaded streamed, verified by sha256, then
renamed into place — so a file in the cache is always whole and checked."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from deckhand.agent.model import DesiredDeployment

log = logging.getLogger(__name__)

# ControlPlaneClient.download_package writes `.<name>.<pid>.part` before the rename.
_PART = re.compile(r"^\..+\.(\d+)\.part$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return True


def remove_orphan_downloads(directory: Path) -> list[str]:
    """Remove the partial downloads of agents that died mid-download (SIGKILL, OOM, power
    loss): a `.part` whose writer pid is no longer running would otherwise stay for good,
    as the next download of the same package writes under its own pid. Returns the names."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return removed
    for entry in entries:
        found = _PART.match(entry.name)
        if found is None or int(found.group(1)) == os.getpid() or _alive(int(found.group(1))):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        removed.append(entry.name)
    if removed:
        log.info("removed %d partial download(s) of a stopped agent from %s: %s", len(removed), directory, removed)
    return removed


class ArtifactCache:
    def __init__(self, directory: Path, client: Any | None = None):
        self._dir = Path(directory)
        self._client = client
        self._locks: dict[str, asyncio.Lock] = {}
        remove_orphan_downloads(self._dir)

    async def path_for(self, desired: DesiredDeployment) -> Path:
        if desired.artifact_path:  # file source: the package is already local
            return Path(desired.artifact_path)
        if self._client is None:
            raise RuntimeError(f"no control plane to download model {desired.model_id} from")
        key = desired.model_sha256 or desired.model_id
        target = self._dir / f"{key}.dhpkg"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one download per package, however many deployments use it
            if not target.exists():
                self._dir.mkdir(parents=True, exist_ok=True)
                remove_old_mixes(self._dir)
                await _download(self._client, desired.model_id, target)
        return target


MIX_KEEP_SECONDS = 3600.0


def remove_old_mixes(directory: Path, keep_seconds: float = MIX_KEEP_SECONDS) -> list[str]:
    """Remove cached mixes (`mix-*.dhpkg`: a deployment's canary or challengers, docs/rollouts.md)
    downloaded more than `keep_seconds` ago. Each step of a canary is a new mix, and plugins
    keep their own copy of what they deploy; a mix still served downloads again when an action
    needs it."""
    cutoff = time.time() - keep_seconds
    removed = []
    for path in directory.glob("mix-*.dhpkg"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path.name)
        except FileNotFoundError:
            continue
    return removed


class DownloadAborted(Exception):
    """Raised in the download thread once the task awaiting it was cancelled."""


async def _download(client: Any, model_id: str, target: Path) -> None:
    """The blocking download in a thread, abandoned at its next chunk when the awaiting task
    is cancelled (a stopping agent): a thread cannot be killed, and the interpreter waits for
    it at exit, so a large download would otherwise hold the agent up until it completed."""
    cancelled = threading.Event()

    def progress(done: int, total: int) -> None:
        if cancelled.is_set():
            raise DownloadAborted(f"download of model package {model_id} abandoned after {done} bytes: stopping")

    try:
        await asyncio.to_thread(client.download_package, model_id, target, progress)
    except asyncio.CancelledError:
        cancelled.set()
        raise

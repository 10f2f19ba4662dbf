"""Keeps the repository in step with a models directory (`deckhand.deployment_dirs`).

Every `interval` seconds it lists the deployment directories and stats each one; only a
directory whose stats changed is re-read. The filesystem plugin changes a deployment only
by renaming files into its directory, which changes the directory's own mtime, so most
passes stat just the directory (1,000 deployments polled 4 times a second cost a core's
8 % otherwise); every FULL_CHECK_EVERY-th pass also stats the info file and the artifact,
which catches tools that edit them in place within a second. A changed model is
loaded in a worker thread, off the request path; the old one serves until the new one
is up. Directories that disappear are unloaded.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from deckhand.deployment_dirs import LayoutError, read_deployment_dir
from deckhand.serving.repository import ModelRepository

log = logging.getLogger("deckhand.serving")


FULL_CHECK_EVERY = 4


def _stat_key(path: Path | str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ModelsDirWatcher:
    def __init__(
        self,
        repository: ModelRepository,
        models_dir: Path,
        *,
        prefix: str = "",
        info_file: str = "config.yml",
        interval: float = 0.25,
        executor: Executor | None = None,
    ) -> None:
        self.repository = repository
        self.models_dir = Path(models_dir)
        self.prefix = prefix
        self.info_file = info_file
        self.interval = interval
        self.executor = executor or ThreadPoolExecutor(2, thread_name_prefix="deckhand-load")
        self._stats: dict[str, Any] = {}
        self._passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass -----------------------------------------------------------------------
    def _dir_stats(self, name: str) -> Any:
        directory = self.models_dir / name
        info = _stat_key(directory / self.info_file)
        entry = self.repository.resolve(name)
        artifact = None
        if entry is not None and entry.current is not None:
            artifact = _stat_key(entry.current.package_path)
        return (info, artifact, _stat_key(directory))

    def scan_names(self) -> list[str]:
        try:
            with os.scandir(self.models_dir) as it:
                return sorted(
                    e.name for e in it if not e.name.startswith(".") and e.name.startswith(self.prefix) and e.is_dir()
                )
        except FileNotFoundError:
            return []

    def poll_once(self, wait: bool = False) -> None:
        """Find changes; submit loads (and wait for them when `wait`)."""
        names = self.scan_names()
        pending = []
        for gone in self.repository.keys() - set(names):
            self.repository.remove(gone)
            self._stats.pop(gone, None)
        full = self._passes % FULL_CHECK_EVERY == 0
        self._passes += 1
        root = str(self.models_dir)
        for name in names:
            known = self._stats.get(name)
            if known is not None and not full and _stat_key(os.path.join(root, name)) == known[2]:
                continue
            stats = self._dir_stats(name)
            if known == stats:
                continue
            self._stats[name] = stats
            pending.append(self.executor.submit(self.sync_dir, name))
        if wait:
            for future in pending:
                future.result()

    def sync_dir(self, name: str, *, force: bool = False) -> bool:
        """Load the directory's model if it differs from what was loaded; True if serving."""
        directory = self.models_dir / name
        try:
            found = read_deployment_dir(directory, self.info_file)
        except LayoutError as exc:
            entry = self.repository.resolve(name)
            if entry is None:
                entry = self.repository.entry(name, name.removeprefix(self.prefix) or name)
            if not directory.exists():
                self.repository.remove(name)
                return False
            entry.last_error = str(exc)
            self._stats.pop(name, None)  # look again next pass
            return entry.current is not None
        entry = self.repository.entry(name, found.deployment_id)
        artifact_stat = _stat_key(found.artifact)
        signature = (found.model_id, str(found.artifact), artifact_stat)
        with entry.lock:
            if not force and entry.source_signature == signature:
                return entry.current is not None
            ok = self.repository.load_into(entry, found.artifact, found.model_id, signature)
        self._stats[name] = self._dir_stats(name)
        return ok

    # -- the polling thread ---------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="deckhand-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll_once()
            except Exception as exc:  # keep watching whatever happens to one pass
                log.warning("event=models_dir_poll_failed dir=%s error=%r", self.models_dir, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

"""The spool channel: a directory of JSON-lines files, each written atomically.

Every publish writes whole files (temp file, fsync, rename), split at `maxFileBytes`;
names sort by creation time so the reader takes the oldest first; a file read but not yet
acknowledged is not handed out again by the same reader (a restarted reader sees it). The directory holds at
most `maxFiles` files: beyond that a publish fails with ChannelError (the reporter keeps
the records in memory and counts what it must drop), so a stopped tracking agent cannot
fill the disk. The reader deletes a file only when it is acknowledged. One reader per
directory (an exclusive lock file says who).

Spec: `spool:/abs/dir[?maxFileBytes=4194304&maxFiles=10000&fsync=true]`
"""

from __future__ import annotations

import fcntl
import itertools
import os
import time
from pathlib import Path
from urllib.parse import parse_qs

from deckhand.fsutil import fsync_dir
from deckhand.monitoring.channels.base import Channel, ChannelConfigError, ChannelError, Delivery
from deckhand.monitoring.records import Record, decode_batch, encode_batch, record_count

SUFFIX = ".jsonl"
DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_FILES = 10_000
_counter = itertools.count()


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ChannelConfigError(f"spool spec: {name}={value!r}; expected true or false")


class SpoolChannel(Channel):
    kind = "spool"

    def __init__(
        self,
        directory: Path,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.fsync = fsync
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = None
        self._in_flight: set[str] = set()  # read, not yet acked: not read again by this reader
        self._count_cache: tuple[float, int] = (0.0, 0)

    @classmethod
    def from_spec(cls, spec: str) -> SpoolChannel:
        rest = spec.partition(":")[2]
        path, _, query = rest.partition("?")
        if not path or not os.path.isabs(path):
            raise ChannelConfigError(
                f"spool spec {spec!r}: the directory must be an absolute path, e.g. spool:/var/lib/deckhand/spool"
            )
        options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        known = {"maxFileBytes", "maxFiles", "fsync"}
        unknown = set(options) - known
        if unknown:
            raise ChannelConfigError(
                f"spool spec {spec!r}: unknown option(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        try:
            max_bytes = int(options.get("maxFileBytes", DEFAULT_MAX_FILE_BYTES))
            max_files = int(options.get("maxFiles", DEFAULT_MAX_FILES))
        except ValueError as exc:
            raise ChannelConfigError(
                f"spool spec {spec!r}: maxFileBytes and maxFiles must be integers ({exc})"
            ) from None
        if max_bytes < 1024 or max_files < 1:
            raise ChannelConfigError(f"spool spec {spec!r}: need maxFileBytes >= 1024 and maxFiles >= 1")
        return cls(
            Path(path),
            max_file_bytes=max_bytes,
            max_files=max_files,
            fsync=_flag(options.get("fsync", "true"), "fsync"),
        )

    def describe(self) -> str:
        return f"spool:{self.directory}"

    # ----- writing -----------------------------------------------------------------------
    def _files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX) and not p.name.startswith("."))

    def _file_count(self) -> int:
        """How many files wait (listing cached for a second: publish is frequent)."""
        at, count = self._count_cache
        now = time.monotonic()
        if now - at > 1.0:
            count = sum(1 for p in os.scandir(self.directory) if p.name.endswith(SUFFIX) and not p.name.startswith("."))
            self._count_cache = (now, count)
        return count

    def _chunks(self, records: list[Record]) -> list[bytes]:
        chunks: list[bytes] = []
        current: list[bytes] = []
        size = 0
        for line in encode_batch(records).splitlines(keepends=True):
            if current and size + len(line) > self.max_file_bytes:
                chunks.append(b"".join(current))
                current, size = [], 0
            current.append(line)
            size += len(line)
        if current:
            chunks.append(b"".join(current))
        return chunks

    def publish(self, records: list[Record], message_id: str | None = None) -> None:
        if not records:
            return
        chunks = self._chunks(records)
        waiting = self._file_count()
        if waiting + len(chunks) > self.max_files:
            raise ChannelError(
                f"spool {self.directory} holds {waiting} files (maxFiles={self.max_files}); "
                "is the tracking agent running?"
            )
        try:
            for data in chunks:
                name = f"{time.time_ns():020d}-{os.getpid()}-{next(_counter):06d}{SUFFIX}"
                tmp = self.directory / f".{name}.tmp"
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    if self.fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                os.replace(tmp, self.directory / name)
            if self.fsync:
                fsync_dir(self.directory)
        except OSError as exc:
            raise ChannelError(f"spool {self.directory}: cannot write ({exc})") from exc
        at, count = self._count_cache
        self._count_cache = (at, count + len(chunks))

    # ----- reading -----------------------------------------------------------------------
    def _take_lock(self) -> None:
        if self._lock_fd is not None:
            return
        fd = os.open(self.directory / ".reader.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ChannelConfigError(
                f"spool {self.directory} is already read by another tracking agent; run one per spool directory"
            ) from None
        self._lock_fd = fd
        self._clean_stale_temps()

    def _clean_stale_temps(self) -> None:
        """Temp files of writers that died mid-write (older than a minute) are garbage."""
        cutoff = time.time() - 60
        for path in self.directory.glob(".*.tmp"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass

    def read(self, max_records: int, timeout: float) -> list[Delivery]:
        self._take_lock()
        deadline = time.monotonic() + timeout
        while True:
            files = [p for p in self._files() if p.name not in self._in_flight]
            if files or time.monotonic() >= deadline:
                break
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        deliveries: list[Delivery] = []
        count = 0
        for path in files:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            records = decode_batch(data)
            deliveries.append(Delivery(f"spool:{path.name}", records, path))
            self._in_flight.add(path.name)
            count += record_count(records)
            if count >= max_records:
                break
        return deliveries

    def ack(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            Path(delivery.handle).unlink(missing_ok=True)
            self._in_flight.discard(Path(delivery.handle).name)
        if deliveries:
            fsync_dir(self.directory)

    def close(self) -> None:
        self._in_flight.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

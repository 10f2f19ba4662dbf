"""Crash-safe file writes: write to a temp path beside the target, fsync, rename.

Only `os` is imported: the plugin runner writes its status file through here on every
subprocess action, so start-up cost matters."""

from __future__ import annotations

import os

StrPath = str | os.PathLike


def temp_sibling(path: StrPath, tag: str = "tmp") -> str:
    """A hidden, unique name in the same directory (same filesystem, so rename is atomic)."""
    head, name = os.path.split(os.fspath(path))
    return os.path.join(head, f".{name}.{tag}-{os.urandom(4).hex()}")


def fsync_dir(path: StrPath) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: StrPath, data: bytes, mode: int = 0o644) -> None:
    path = os.fspath(path)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(os.path.dirname(path) or ".")


def atomic_write_text(path: StrPath, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def copy_file_synced(src: StrPath, dst: StrPath, chunk_size: int = 1 << 20) -> int:
    """Copy src to dst (which must not be in use by readers) and fsync it; returns bytes copied."""
    copied = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while True:
            chunk = fin.read(chunk_size)
            if not chunk:
                break
            fout.write(chunk)
            copied += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return copied


def private_dir(path: StrPath) -> None:
    """Create `path` (and parents) and make it 0700 whatever the umask: what a server keeps
    there (a database, model packages) is for its own user only."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o700)


def private_file(path: StrPath) -> None:
    """Create `path` empty if it is missing, and make it 0600. SQLite gives its -wal, -shm
    and journal files the mode of the database file, so they follow."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)

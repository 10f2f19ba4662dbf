"""The package file: one zip holding `manifest.json` and the model files under `payload/`.

`payload_sha256` in the manifest covers every payload file (name and bytes, in name
order), so a package whose model files were altered is refused even when the zip itself
is intact. The sha256 of the whole file is what the agent checks after a download.

Reading checks every member's name and type and the PackageLimits (deckhand.packages.limits)
from the central directory before inflating anything, then hashes members in chunks.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from deckhand.packages.errors import PackageError
from deckhand.packages.limits import DEFAULT_LIMITS, PackageLimitError, PackageLimits, check_directory, check_members
from deckhand.packages.manifest import MODEL_FORMATS, Manifest

PACKAGE_SUFFIX = ".dhpkg"
MANIFEST_NAME = "manifest.json"
PAYLOAD_DIR = "payload/"
_ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20
# Longer names only come from deep nesting meant to break whoever extracts the files.
_MAX_NAME_CHARS = 1024


def payload_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over (name, sha256(content)) pairs sorted by name."""
    return _combine_digests((name, hashlib.sha256(content).digest()) for name, content in files)


def _combine_digests(digests: Iterable[tuple[str, bytes]]) -> str:
    outer = hashlib.sha256()
    for name, digest in sorted(digests, key=lambda item: item[0]):
        outer.update(name.encode("utf-8") + b"\0")
        outer.update(digest)
    return outer.hexdigest()


def _name_problem(name: str) -> str | None:
    if "\0" in name:
        return "it contains a NUL byte"
    if "\\" in name:
        return "it contains a backslash"
    if ":" in name:
        return "it contains ':' (a drive letter or a stream name)"
    if name.startswith("/"):
        return "it is absolute"
    if len(name) > _MAX_NAME_CHARS:
        return f"it is {len(name)} characters long, more than {_MAX_NAME_CHARS}"
    if any(part in ("", ".", "..") for part in name.removesuffix("/").split("/")):
        return "it has an empty, '.' or '..' part"
    if name != MANIFEST_NAME and not name.startswith(PAYLOAD_DIR):
        return f"it is neither {MANIFEST_NAME} nor under {PAYLOAD_DIR}"
    return None


def check_member_name(name: str, path: Path) -> None:
    """Refuse a member name that a reader could turn into a path outside its directory."""
    problem = _name_problem(name)
    if problem:
        raise PackageError(
            f"{path}: unsafe member name {name!r}: {problem}; a package holds {MANIFEST_NAME} "
            f"and files under {PAYLOAD_DIR} with plain relative names only"
        )


def file_sha256(path: Path) -> str:
    """sha256 of a whole file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call write(handle) on a temp file next to `path`, fsync it, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_package(output: Path, manifest: Manifest, payload: Mapping[str, bytes]) -> None:
    """Write the package file atomically. `payload` maps relative names to bytes."""

    for name in payload:
        check_member_name(PAYLOAD_DIR + name, output)

    def _write(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST_NAME, manifest.model_dump_json(indent=2))
            for name in sorted(payload):
                archive.writestr(PAYLOAD_DIR + name, payload[name])

    atomic_write_bytes(output, _write)


def _directory_size(handle: BinaryIO) -> tuple[int, int] | None:
    """(members, bytes) of the central directory as the end record states them, found by
    zipfile's own (private) reader so that the check sees exactly what zipfile will parse."""
    try:
        end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]
    except OSError:
        return None
    return (end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]) if end else None  # type: ignore[attr-defined]


def _open_zip(path: Path, limits: PackageLimits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The open archive and its members, after every check the central directory allows."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path}: no such package file; check the path")
    with open(path, "rb") as handle:
        head = handle.read(4)
        directory = _directory_size(handle) if head == _ZIP_MAGIC else None
    size = path.stat().st_size
    if head != _ZIP_MAGIC:
        raise PackageError(
            f"{path}: unknown format: not a deckhand package (expected a zip container "
            f"starting with PK\\x03\\x04, found {head!r}); build one with `deckhand package build`"
        )
    if directory is not None:
        check_directory(path, *directory, limits)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise PackageError(
            f"{path}: truncated: the zip's end record is missing ({size} bytes; {exc}); "
            "the file was probably cut short, download or build it again"
        ) from exc
    try:
        members = archive.infolist()
        check_members(path, members, limits)
        _check_names_and_types(path, members)
    except BaseException:
        archive.close()
        raise
    return archive, members


def _check_names_and_types(path: Path, members: list[zipfile.ZipInfo]) -> None:
    """Names, file types, duplicates, and files that another member uses as a directory."""
    seen: set[str] = set()
    for info in members:
        check_member_name(info.orig_filename, path)  # orig_filename: zipfile cuts `filename` at a NUL
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            what = "a symlink" if kind == stat.S_IFLNK else f"a special file (type {kind:#o})"
            raise PackageError(f"{path}: unsafe member {info.filename!r}: it is {what}; packages hold regular files")
        key = info.filename.removesuffix("/")
        if key in seen:
            raise PackageError(f"{path}: unsafe member {info.filename!r}: the name appears twice in the package")
        seen.add(key)
    files = {info.filename for info in members if not info.is_dir()}
    for name in seen:
        parent = name.rpartition("/")[0]
        while parent:
            if parent in files:
                raise PackageError(f"{path}: unsafe member {name!r}: {parent!r} is a file, not a directory")
            parent = parent.rpartition("/")[0]


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, keep: bool) -> tuple[bytes, bytes]:
    """sha256 of one member read in chunks, and its bytes if `keep` (else b"").

    Reading inflates at most the declared file_size, which check_members has bounded:
    zipfile stops there and checks the CRC, so a member whose header lies fails as corrupt."""
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    try:
        with archive.open(info) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                if keep:
                    chunks.append(chunk)
    except Exception as exc:  # BadZipFile (CRC), EOFError, zlib.error: all mean damage
        raise PackageError(f"{path}: corrupt: member {info.filename!r} cannot be read ({exc})") from exc
    return digest.digest(), b"".join(chunks)


def _parse_manifest(raw: bytes, path: Path) -> Manifest:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise PackageError(f"{path}: corrupt: {MANIFEST_NAME} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise PackageError(f"{path}: corrupt: {MANIFEST_NAME} must hold a JSON object")
    fmt = data.get("format")
    if fmt not in MODEL_FORMATS:
        raise PackageError(
            f"{path}: unknown format {fmt!r} in {MANIFEST_NAME}; expected one of {', '.join(MODEL_FORMATS)}"
        )
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'manifest'}: {err['msg']}" for err in exc.errors()
        )
        raise PackageError(f"{path}: corrupt: {MANIFEST_NAME} is invalid: {problems}") from exc


def _read(path: Path, limits: PackageLimits, keep: bool) -> tuple[Manifest, dict[str, bytes]]:
    """Check and verify a package; the payload files' bytes are returned only if `keep`."""
    path = Path(path)
    archive, members = _open_zip(path, limits)
    with archive:
        by_name = {info.filename: info for info in members}
        if MANIFEST_NAME not in by_name:
            raise PackageError(f"{path}: corrupt: no {MANIFEST_NAME} in the package (found {list(by_name)[:5]!r})")
        info = by_name[MANIFEST_NAME]
        if info.file_size > limits.max_manifest_bytes:
            raise PackageLimitError(
                f"{path}: too large: {MANIFEST_NAME} is {info.file_size} bytes, over the limit of "
                f"{limits.max_manifest_bytes} bytes for a manifest (it holds metadata only); rebuild the package"
            )
        manifest = _parse_manifest(_read_member(archive, info, path, keep=True)[1], path)
        digests: list[tuple[str, bytes]] = []
        payload: dict[str, bytes] = {}
        for info in members:
            if info.is_dir() or info.filename == MANIFEST_NAME:
                continue
            name = info.filename[len(PAYLOAD_DIR) :]
            digest, content = _read_member(archive, info, path, keep)
            digests.append((name, digest))
            if keep:
                payload[name] = content
    if not digests:
        raise PackageError(f"{path}: corrupt: the package has no payload files")
    actual = _combine_digests(digests)
    if actual != manifest.payload_sha256:
        raise PackageError(
            f"{path}: checksum mismatch: manifest says payload_sha256={manifest.payload_sha256}, "
            f"the payload hashes to {actual}; the package was altered or damaged, rebuild it"
        )
    return manifest, payload


def read_package(path: Path, limits: PackageLimits = DEFAULT_LIMITS) -> tuple[Manifest, dict[str, bytes]]:
    """Open and verify a package; return its manifest and payload files (name -> bytes)."""
    return _read(path, limits, keep=True)


def read_manifest(path: Path, limits: PackageLimits = DEFAULT_LIMITS) -> Manifest:
    """Verify a package (names, limits, structure and payload sha256) and return its manifest.
    Members are hashed in chunks: memory stays small whatever the package's size."""
    manifest, _ = _read(path, limits, keep=False)
    return manifest

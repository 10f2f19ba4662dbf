"""The package file: one zip holding `manifest.json` and the model files under `payload/`.

`payload_sha256` in the manifest covers every payload file (name and bytes, in name
order), so a package whose model files were altered is refused even when the zip itself
is intact. The sha256 of the whole file is what the agent checks after a download.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from deckhand.packages.errors import PackageError
from deckhand.packages.manifest import MODEL_FORMATS, Manifest

PACKAGE_SUFFIX = ".dhpkg"
MANIFEST_NAME = "manifest.json"
PAYLOAD_DIR = "payload/"
_ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20


def payload_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over (name, sha256(content)) pairs sorted by name."""
    outer = hashlib.sha256()
    for name, content in sorted(files, key=lambda item: item[0]):
        outer.update(name.encode("utf-8") + b"\0")
        outer.update(hashlib.sha256(content).digest())
    return outer.hexdigest()


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

    def _write(handle: BinaryIO) -> None:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST_NAME, manifest.model_dump_json(indent=2))
            for name in sorted(payload):
                archive.writestr(PAYLOAD_DIR + name, payload[name])

    atomic_write_bytes(output, _write)


def _open_zip(path: Path) -> zipfile.ZipFile:
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path}: no such package file; check the path")
    with open(path, "rb") as handle:
        head = handle.read(4)
    size = path.stat().st_size
    if head != _ZIP_MAGIC:
        raise PackageError(
            f"{path}: unknown format: not a deckhand package (expected a zip container "
            f"starting with PK\\x03\\x04, found {head!r}); build one with `deckhand package build`"
        )
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise PackageError(
            f"{path}: truncated: the zip's end record is missing ({size} bytes; {exc}); "
            "the file was probably cut short, download or build it again"
        ) from exc


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    try:
        return archive.read(name)
    except Exception as exc:  # BadZipFile (CRC), EOFError, zlib.error: all mean damage
        raise PackageError(f"{path}: corrupt: member {name!r} cannot be read ({exc})") from exc


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


def read_package(path: Path) -> tuple[Manifest, dict[str, bytes]]:
    """Open and verify a package; return its manifest and payload files (name -> bytes)."""
    path = Path(path)
    with _open_zip(path) as archive:
        names = archive.namelist()
        if MANIFEST_NAME not in names:
            raise PackageError(f"{path}: corrupt: no {MANIFEST_NAME} in the package (found {names[:5]!r})")
        manifest = _parse_manifest(_read_member(archive, MANIFEST_NAME, path), path)
        payload = {
            name[len(PAYLOAD_DIR) :]: _read_member(archive, name, path)
            for name in names
            if name.startswith(PAYLOAD_DIR) and not name.endswith("/")
        }
    if not payload:
        raise PackageError(f"{path}: corrupt: the package has no payload files")
    actual = payload_digest(payload.items())
    if actual != manifest.payload_sha256:
        raise PackageError(
            f"{path}: checksum mismatch: manifest says payload_sha256={manifest.payload_sha256}, "
            f"the payload hashes to {actual}; the package was altered or damaged, rebuild it"
        )
    return manifest, payload


def read_manifest(path: Path) -> Manifest:
    """Verify a package (structure and payload sha256) and return its manifest."""
    manifest, _ = read_package(path)
    return manifest

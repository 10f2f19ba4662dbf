"""Fixtures of the security suite: packages, hostile ones included, built once a session."""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from deckhand.package_limits import MiB
from deckhand.packages.container import MANIFEST_NAME, PAYLOAD_DIR, payload_digest


class _RunsAShellCommand:
    """Unpickling this runs `touch <marker>`: what a hostile package does when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (f"touch {self.marker}",)


def hostile_package(demo: Path, path: Path, marker: Path) -> Path:
    """The demo package with its model replaced by a pickle that runs a shell command; the
    checksums are right, so only refusing to load it at all keeps the command from running."""
    with zipfile.ZipFile(demo) as source:
        manifest = json.loads(source.read(MANIFEST_NAME))
    payload = {"model.joblib": pickle.dumps(_RunsAShellCommand(marker))}
    manifest["payload_sha256"] = payload_digest(payload.items())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_NAME, json.dumps(manifest))
        for name, data in payload.items():
            archive.writestr(PAYLOAD_DIR + name, data)
    return path


BOMB_NAME = "payload/zeros.bin"
BOMB_SIZE = 1024 * MiB


def zeros_member(archive: zipfile.ZipFile, name: str, size: int) -> None:
    chunk = bytes(MiB)
    with archive.open(name, "w") as handle:  # deflated, as the archive's default
        for _ in range(size // MiB):
            handle.write(chunk)


@pytest.fixture(scope="session")
def bomb(tmp_path_factory: pytest.TempPathFactory, demo_package: Path) -> Path:
    """The demo package plus one deflated member of 1 GiB of zeros (about 1 MB on disk),
    written in chunks so that building it stays small in memory."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.dhpkg"
    zeros = hashlib.sha256()
    for _ in range(BOMB_SIZE // MiB):
        zeros.update(bytes(MiB))
    with zipfile.ZipFile(demo_package) as src:
        manifest = json.loads(src.read(MANIFEST_NAME))
        payload = {i.filename: src.read(i) for i in src.infolist() if i.filename != MANIFEST_NAME}
    digests = [(n[len(PAYLOAD_DIR) :], hashlib.sha256(d).digest()) for n, d in payload.items()]
    outer = hashlib.sha256()  # payload_digest, with the zeros' digest computed in chunks above
    for name, digest in sorted([*digests, (BOMB_NAME[len(PAYLOAD_DIR) :], zeros.digest())]):
        outer.update(name.encode() + b"\0" + digest)
    manifest["payload_sha256"] = outer.hexdigest()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_NAME, json.dumps(manifest))
        for name, data in payload.items():
            archive.writestr(name, data)
        zeros_member(archive, BOMB_NAME, BOMB_SIZE)
    return path

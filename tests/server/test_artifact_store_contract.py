"""One contract, both artifact stores (services.artifacts): a local directory, and an S3
bucket on a real SeaweedFS (tests/s3_fixtures.py). Upload, commit, open and stream, local
copy, delete, a missing package, and the cleanup of what dead uploads left."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from pathlib import Path

import pytest
from tests.s3_fixtures import S3Server

from deckhand.server.services.artifacts import (
    STALE_UPLOAD_SECONDS,
    ArtifactDamaged,
    ArtifactStore,
    LocalArtifactStore,
    open_artifact_store,
)
from deckhand.server.settings import ServerSettings


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    server: S3Server = request.getfixturevalue("s3_server")
    request.getfixturevalue("s3_env")
    settings = ServerSettings(data_dir=tmp_path / "data", artifact_store=server.new_bucket("some/prefix"))
    opened = open_artifact_store(settings)
    opened.start()
    return opened


def _stored(store: ArtifactStore, package_id: str, data: bytes) -> str:
    upload = store.new_upload()
    for i in range(0, len(data), 4096):
        upload.write(data[i : i + 4096])
    digest = upload.finish()
    store.commit(upload, package_id)
    assert not upload.path.exists()  # the temp file is gone either way
    return digest


def test_a_committed_package_streams_back_whole(store: ArtifactStore) -> None:
    data = os.urandom(300_000)
    digest = _stored(store, "pkg1", data)
    assert digest == hashlib.sha256(data).hexdigest()

    artifact = store.open("pkg1")
    assert artifact is not None and artifact.size == len(data)
    assert b"".join(artifact.chunks()) == data


def test_a_local_copy_is_verified_against_the_checksum(store: ArtifactStore) -> None:
    data = b"a package's bytes" * 1000
    digest = _stored(store, "pkg2", data)
    copy = store.local_copy("pkg2", digest)
    assert copy is not None and copy.read_bytes() == data
    assert store.local_copy("missing", digest) is None
    if not isinstance(store, LocalArtifactStore):  # the local store's file is the package itself
        store.keep_local_copies(set())
        with pytest.raises(ArtifactDamaged, match="pkg2"):
            store.local_copy("pkg2", "0" * 64)


def test_delete_removes_it_and_a_missing_package_opens_as_none(store: ArtifactStore) -> None:
    _stored(store, "pkg3", b"x" * 10)
    store.delete("pkg3")
    assert store.open("pkg3") is None
    store.delete("pkg3")  # already gone: no error
    assert store.open("never-uploaded") is None


def test_a_discarded_upload_leaves_nothing(store: ArtifactStore) -> None:
    upload = store.new_upload()
    upload.write(b"partial")
    upload.discard()
    assert not upload.path.exists() and store.open("pkg4") is None


def test_start_removes_stale_temp_files_and_keeps_uploads_in_progress(store: ArtifactStore) -> None:
    in_progress = store.new_upload()
    in_progress.write(b"partial")
    dead = store.new_upload()
    dead.finish()
    old = time.time() - STALE_UPLOAD_SECONDS - 60
    os.utime(dead.path, (old, old))

    store.start()

    assert in_progress.path.exists() and not dead.path.exists()
    in_progress.discard()


@pytest.mark.s3
def test_s3_start_aborts_only_stale_multipart_uploads(s3_server: S3Server, s3_env: dict, tmp_path: Path) -> None:
    from deckhand.server.services.artifacts.s3 import S3ArtifactStore

    url = s3_server.new_bucket("pfx")
    store = open_artifact_store(ServerSettings(data_dir=tmp_path, artifact_store=url))
    assert isinstance(store, S3ArtifactStore)
    client = s3_server.client()
    client.create_multipart_upload(Bucket=store.bucket, Key=store.key("interrupted"))
    client.create_multipart_upload(Bucket=store.bucket, Key="elsewhere/not-ours.pkg")

    assert store.abort_stale_multipart_uploads() == []  # young: perhaps another replica's commit
    # Seen from an hour later, the one under the prefix is stale; the other prefix is not ours.
    assert store.abort_stale_multipart_uploads(older_than=-2 * STALE_UPLOAD_SECONDS) == [store.key("interrupted")]
    left = [u["Key"] for u in client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]
    assert left == ["elsewhere/not-ours.pkg"]


@pytest.mark.s3
def test_s3_objects_carry_their_checksum_and_use_multipart_past_the_threshold(
    s3_server: S3Server, s3_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from boto3.s3.transfer import TransferConfig

    from deckhand.server.services.artifacts import s3

    store = open_artifact_store(ServerSettings(data_dir=tmp_path, artifact_store=s3_server.new_bucket("")))
    assert isinstance(store, s3.S3ArtifactStore) and store.key("p") == "p.pkg"  # no prefix: at the top
    # Parts of 5 MiB (S3's least) past 5 MiB: a 12 MiB package goes in three parts.
    store._transfer = TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20, max_concurrency=2)
    data = os.urandom(12 * 2**20)
    digest = _stored(store, "big", data)

    head = s3_server.client().head_object(Bucket=store.bucket, Key="big.pkg")
    assert head["Metadata"] == {"sha256": digest}
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag counts its parts
    artifact = store.open("big")
    assert artifact is not None and hashlib.sha256(b"".join(artifact.chunks())).hexdigest() == digest
    assert dt.datetime.now(dt.UTC) - head["LastModified"] < dt.timedelta(minutes=5)

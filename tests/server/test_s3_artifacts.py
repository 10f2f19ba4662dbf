"""The control plane with its packages in S3 (`deckhand server --artifact-store s3://...`),
against a real SeaweedFS (tests/s3_fixtures.py): through the HTTP API with two control
planes on one bucket and one database, a 2 GiB package in bounded memory, and the errors of
a wrong configuration (clear, naming the setting, never a secret)."""

from __future__ import annotations

import hashlib
import logging
import os
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.s3_fixtures import S3Server
from typer.testing import CliRunner

from deckhand.server.app import create_app
from deckhand.server.settings import ServerSettings
from deckhand.testing import free_port

pytestmark = pytest.mark.s3

ADMIN_TOKEN = "dh_test-admin-token-0123456789abcdef"
URL = "/api/v1/model-packages"
OCTET = {"Content-Type": "application/octet-stream"}


def _replica(data_dir: Path, database_url: str, store: str) -> TestClient:
    settings = ServerSettings(
        data_dir=data_dir, database_url=database_url, artifact_store=store, bootstrap_token=ADMIN_TOKEN
    )
    client = TestClient(create_app(settings))
    client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    return client


@pytest.fixture
def replicas(s3_env: dict, s3_bucket: str, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """Two control planes, each with its own data dir, on one SQLite database and one bucket."""
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    with (
        _replica(tmp_path / "a", database_url, s3_bucket) as a,
        _replica(tmp_path / "b", database_url, s3_bucket) as b,
    ):
        yield a, b


def _upload(api: TestClient, path: Path) -> dict:
    response = api.post(URL, content=path.read_bytes(), headers=OCTET)
    assert response.status_code == 201, response.text
    return response.json()


def test_one_replica_stores_another_serves_and_deletes(
    replicas: tuple[TestClient, TestClient], s3_server: S3Server, s3_bucket: str, demo_package: Path
) -> None:
    a, b = replicas
    package = _upload(a, demo_package)
    bucket, prefix = s3_bucket.removeprefix("s3://").split("/", 1)
    head = s3_server.client().head_object(Bucket=bucket, Key=f"{prefix}/{package['id']}.pkg")
    assert head["Metadata"] == {"sha256": package["sha256"]} and head["ContentLength"] == package["size"]
    scratch = a.app.state.control_plane.artifacts.scratch  # type: ignore[attr-defined]
    assert not list(scratch.glob(".upload-*")), "the temp file of the upload is left behind"

    served = b.get(f"{URL}/{package['id']}/artifact")
    assert served.status_code == 200, served.text
    assert served.content == demo_package.read_bytes()
    assert served.headers["x-checksum-sha256"] == package["sha256"]
    assert int(served.headers["content-length"]) == package["size"]
    assert package["name"] in served.headers["content-disposition"]

    assert b.delete(f"{URL}/{package['id']}").status_code == 204
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    assert a.get(f"{URL}/{package['id']}/artifact").status_code == 404


def test_both_replicas_build_the_same_mix_from_the_bucket(
    replicas: tuple[TestClient, TestClient], demo_package: Path, second_package: Path
) -> None:
    a, b = replicas
    champion, challenger = _upload(a, demo_package), _upload(b, second_package)
    environment = a.post("/api/v1/environments", json={"name": "staging", "platform": "test"}).json()
    body = {"name": "iris", "environmentId": environment["id"], "modelPackageId": champion["id"]}
    deployment = a.post("/api/v1/deployments", json=body).json()
    added = a.post(f"/api/v1/deployments/{deployment['id']}/challengers", json={"modelPackageId": challenger["id"]})
    assert added.status_code == 200, added.text
    served = b.get(f"/api/v1/deployments/{deployment['id']}").json()["servedModelId"]

    mixes = [replica.get(f"{URL}/{served}/artifact") for replica in (b, a)]
    for mix in mixes:
        assert mix.status_code == 200, mix.text
        assert mix.headers["x-checksum-sha256"] == hashlib.sha256(mix.content).hexdigest()
    assert mixes[0].content == mixes[1].content  # each replica built its own: the same bytes
    cache = b.app.state.control_plane.artifacts.scratch / "packages"  # type: ignore[attr-defined]
    assert sorted(p.stem for p in cache.glob("*.pkg")) == sorted([champion["id"], challenger["id"]])


def test_a_package_missing_from_the_bucket_is_a_clear_404(
    replicas: tuple[TestClient, TestClient], s3_server: S3Server, s3_bucket: str, demo_package: Path
) -> None:
    a, _ = replicas
    package = _upload(a, demo_package)
    bucket, prefix = s3_bucket.removeprefix("s3://").split("/", 1)
    s3_server.client().delete_object(Bucket=bucket, Key=f"{prefix}/{package['id']}.pkg")

    response = a.get(f"{URL}/{package['id']}/artifact")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert f"missing from {s3_bucket} at {s3_server.endpoint_url}" in detail and "upload the package again" in detail
    assert s3_server.secret_key not in detail and s3_server.access_key not in detail


def test_a_store_failing_at_run_time_is_a_503_that_names_it(
    replicas: tuple[TestClient, TestClient], s3_server: S3Server, s3_bucket: str, demo_package: Path
) -> None:
    """Say the credentials are rotated under a running control plane: uploads and downloads
    answer 503 naming the store and the variables to check, and leave no temp file."""
    a, _ = replicas
    package = _upload(a, demo_package)
    store = a.app.state.control_plane.artifacts  # type: ignore[attr-defined]
    store._client = s3_server.client(aws_secret_access_key="rotated-" + os.urandom(4).hex())

    for response in (
        a.post(URL, content=demo_package.read_bytes(), headers=OCTET),
        a.get(f"{URL}/{package['id']}/artifact"),
    ):
        assert response.status_code == 503, response.text
        detail = response.json()["detail"]
        assert f"the artifact store {s3_bucket} at {s3_server.endpoint_url} failed" in detail
        assert "AWS_SECRET_ACCESS_KEY" in detail and detail.endswith("try again")
    assert not list(store.scratch.glob(".upload-*"))
    assert len(a.get(URL).json()) == 1
    assert a.delete(f"{URL}/{package['id']}").status_code == 204  # deleted; its object only left over


def test_the_startup_log_names_the_store_and_no_credential(
    s3_server: S3Server, s3_env: dict, s3_bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="deckhand.server.app")
    _replica(tmp_path / "data", f"sqlite:///{tmp_path / 'db'}", s3_bucket)
    assert f"artifacts={s3_bucket} at {s3_server.endpoint_url}" in caplog.text
    assert s3_server.secret_key not in caplog.text and s3_server.access_key not in caplog.text


# -- a wrong configuration ------------------------------------------------------------


def _server(tmp_path: Path, *args: str, env: Mapping[str, str | None]) -> tuple[int, str]:
    from deckhand.cli.app import build_app

    argv = ["server", "--data-dir", str(tmp_path / "data"), "--port", str(free_port()), *args]
    result = CliRunner().invoke(build_app(), argv, env={"DECKHAND_BOOTSTRAP_TOKEN": ADMIN_TOKEN, **env})
    return result.exit_code, result.output


def test_an_s3_url_without_a_bucket_names_the_setting(tmp_path: Path) -> None:
    code, output = _server(tmp_path, "--artifact-store", "s3://", env={})
    assert code == 2, output
    assert "--artifact-store (DECKHAND_ARTIFACT_STORE)" in output and "names no bucket" in output
    assert "s3://BUCKET[/PREFIX]" in output


def test_an_unreachable_endpoint_names_the_endpoint_and_its_variables(s3_server: S3Server, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = {**s3_server.env(), "AWS_ENDPOINT_URL": closed}
    start = time.monotonic()
    code, output = _server(tmp_path, "--artifact-store", "s3://somewhere/pkgs", env=env)
    assert code == 1, output
    assert f"s3://somewhere/pkgs at {closed}" in output and "cannot be reached" in output
    assert "AWS_ENDPOINT_URL" in output and "--s3-endpoint-url" in output
    assert s3_server.secret_key not in output
    assert time.monotonic() - start < 60


def test_wrong_credentials_name_the_variables_not_their_values(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    wrong = "not-the-secret-" + os.urandom(6).hex()
    env = {**s3_server.env(), "AWS_SECRET_ACCESS_KEY": wrong}
    code, output = _server(tmp_path, "--artifact-store", s3_bucket, env=env)
    assert code == 1, output
    assert "access denied" in output and "AWS_SECRET_ACCESS_KEY" in output
    assert wrong not in output and s3_server.secret_key not in output


def test_a_missing_bucket_and_missing_credentials_say_what_to_do(s3_server: S3Server, tmp_path: Path) -> None:
    code, output = _server(tmp_path, "--artifact-store", "s3://no-such-bucket-here", env=s3_server.env())
    assert code == 1 and "bucket does not exist" in output, output

    nothing: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_PROFILE": None, "AWS_ENDPOINT_URL": None,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask a cloud's metadata address from a test
    }  # fmt: skip
    flags = ["--s3-endpoint-url", s3_server.endpoint_url, "--s3-region", "us-east-1"]
    code, output = _server(tmp_path, "--artifact-store", "s3://any-bucket", *flags, env=nothing)
    assert code == 1 and "no S3 credentials found" in output and "AWS_ACCESS_KEY_ID" in output, output

    code, output = _server(tmp_path, "--artifact-store", "s3://any-bucket", *flags, env={"AWS_PROFILE": "nobody"})
    assert code == 1 and "profile (nobody) could not be found" in output and "AWS_PROFILE" in output, output


# -- a 2 GiB package ------------------------------------------------------------------


BIG = 2 * 1024**3


def _big_package(demo: Path, path: Path, size: int) -> None:
    """The demo package plus `payload/blob.bin` of `size` random-ish bytes, stored (not
    deflated), written and hashed in chunks; its manifest's payload sha256 right."""
    import json

    from deckhand.packages.container import MANIFEST_NAME, PAYLOAD_DIR, _combine_digests

    with zipfile.ZipFile(demo) as src:
        manifest = json.loads(src.read(MANIFEST_NAME))
        members = [(i.filename, src.read(i)) for i in src.infolist() if i.filename != MANIFEST_NAME]
    digests = [(name[len(PAYLOAD_DIR) :], hashlib.sha256(data).digest()) for name, data in members]
    block = os.urandom(8 * 1024**2)
    blob = hashlib.sha256()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members:
            archive.writestr(name, data)
        with archive.open("payload/blob.bin", "w", force_zip64=True) as out:
            for i in range(size // len(block)):
                chunk = i.to_bytes(8, "big") + block[8:]  # no two chunks alike
                out.write(chunk)
                blob.update(chunk)
        manifest["payload_sha256"] = _combine_digests([*digests, ("blob.bin", blob.digest())])
        archive.writestr(MANIFEST_NAME, json.dumps(manifest))


@pytest.mark.slow
def test_a_2_gib_package_round_trips_through_s3_in_bounded_memory(
    s3_env: dict, s3_bucket: str, demo_package: Path, tmp_path: Path
) -> None:
    from deckhand.client import ControlPlaneClient
    from deckhand.packages.container import file_sha256
    from deckhand.server.testing import ServerProcess
    from deckhand.testing import peak_rss_mib, reset_peak_rss, rss_mib

    big, back = tmp_path / "big.dhpkg", tmp_path / "back.dhpkg"
    try:
        start = time.monotonic()
        _big_package(demo_package, big, BIG)
        sent = file_sha256(big)
        built = time.monotonic() - start
        with ServerProcess(
            tmp_path / "data", bootstrap_token=ADMIN_TOKEN, extra_args=["--artifact-store", s3_bucket]
        ) as server:
            client = ControlPlaneClient(server.url, ADMIN_TOKEN, timeout=600)
            client.upload_package(demo_package)  # warm-up: the upload path's imports are done
            idle = rss_mib(server.pid)
            reset_peak_rss(server.pid)
            start = time.monotonic()
            package = client.upload_package(big)
            uploaded = time.monotonic() - start
            client.download_package(package["id"], back)
            downloaded = time.monotonic() - start - uploaded
            peak = peak_rss_mib(server.pid)
            client.delete_package(package["id"])
            log = server.output()
        assert f"artifacts={s3_bucket} at {os.environ['AWS_ENDPOINT_URL']}" in log
        assert os.environ["AWS_SECRET_ACCESS_KEY"] not in log
        print(
            f"\n2 GiB via S3: built in {built:.0f} s, upload {uploaded:.0f} s, download {downloaded:.0f} s; "
            f"control plane RSS idle {idle:.0f} MiB, peak {peak:.0f} MiB"
        )
        assert package["sha256"] == sent and package["size"] == big.stat().st_size
        assert file_sha256(back) == sent
        assert peak < 400, f"peak RSS {peak:.0f} MiB for a {BIG // 1024**2} MiB package"
    finally:
        big.unlink(missing_ok=True)
        back.unlink(missing_ok=True)

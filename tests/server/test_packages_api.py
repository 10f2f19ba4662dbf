"""Model packages: streamed upload with checksum verification, metadata, download, delete."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi.testclient import TestClient

from deckhand.server.settings import ServerSettings

URL = "/api/v1/model-packages"
OCTET = {"Content-Type": "application/octet-stream"}


def test_upload_reads_metadata_from_the_manifest(api: TestClient, demo_package: Path) -> None:
    data = demo_package.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    response = api.post(URL, content=data, headers={**OCTET, "X-Checksum-Sha256": digest})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["format"] == "sklearn"
    assert body["targetType"] == "multiclass"
    assert body["classLabels"] == ["setosa", "versicolor", "virginica"]
    assert [f["name"] for f in body["features"]][:2] == ["sepal_length", "sepal_width"]
    assert body["sha256"] == digest and body["size"] == len(data)
    assert body["manifest"]["payload_sha256"]
    assert api.get(f"{URL}/{body['id']}").json()["sha256"] == digest
    assert [p["id"] for p in api.get(URL).json()] == [body["id"]]


def test_artifact_download_is_the_uploaded_file(api: TestClient, package: dict, demo_package: Path) -> None:
    response = api.get(f"{URL}/{package['id']}/artifact")
    assert response.status_code == 200
    assert response.content == demo_package.read_bytes()
    assert response.headers["x-checksum-sha256"] == package["sha256"]
    assert int(response.headers["content-length"]) == package["size"]


def test_checksum_mismatch_is_refused_and_nothing_is_kept(
    api: TestClient, demo_package: Path, settings: ServerSettings
) -> None:
    wrong = "0" * 64
    for kwargs in ({"params": {"sha256": wrong}}, {"headers": {**OCTET, "X-Checksum-Sha256": wrong}}):
        response = api.post(URL, content=demo_package.read_bytes(), **kwargs)
        assert response.status_code == 400
        assert "checksum mismatch" in response.json()["detail"]
    assert api.get(URL).json() == []
    assert list(settings.artifacts_dir.iterdir()) == []


def test_malformed_checksum_names_the_field(api: TestClient, demo_package: Path) -> None:
    response = api.post(URL, content=demo_package.read_bytes(), params={"sha256": "abc"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("sha256:")


def test_invalid_packages_are_refused_with_the_reason(
    api: TestClient, demo_package: Path, settings: ServerSettings
) -> None:
    data = demo_package.read_bytes()
    cases = {
        b"not a zip at all": "unknown format",
        data[: len(data) // 2]: "truncated",
        b"": "empty",
    }
    for body, reason in cases.items():
        response = api.post(URL, content=body, headers=OCTET)
        assert response.status_code == 400, response.text
        detail = response.json()["detail"]
        assert reason in detail
        assert str(settings.data_dir) not in detail  # no server paths in messages
    assert list(settings.artifacts_dir.iterdir()) == []


def test_delete_refused_while_deployed_then_allowed(
    api: TestClient, deployment: dict, package: dict, settings: ServerSettings
) -> None:
    response = api.delete(f"{URL}/{package['id']}")
    assert response.status_code == 409
    assert "deployment" in response.json()["detail"]
    assert api.delete(f"/api/v1/deployments/{deployment['id']}").status_code == 204
    assert api.delete(f"{URL}/{package['id']}").status_code == 204
    assert api.get(f"{URL}/{package['id']}").status_code == 404
    assert not settings.artifacts_dir.joinpath(f"{package['id']}.pkg").exists()


def test_unknown_package_is_404(api: TestClient) -> None:
    assert api.get(f"{URL}/nope").status_code == 404
    assert api.get(f"{URL}/nope/artifact").status_code == 404


def test_too_large_uploads_are_refused(settings: ServerSettings, demo_package: Path) -> None:
    from deckhand.server.app import create_app

    settings.max_upload_bytes = 100
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {settings.bootstrap_token}"
        response = client.post(URL, content=demo_package.read_bytes(), headers=OCTET)
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]

        def chunks():  # no Content-Length: caught while streaming
            yield demo_package.read_bytes()

        response = client.post(URL, content=chunks(), headers=OCTET)
        assert response.status_code == 413
    assert list(settings.artifacts_dir.iterdir()) == []

"""A split deployment's mix downloads from the package artifact route under its
`servedModelId` (docs/rollouts.md): built from the member packages on first use, checksummed,
the same bytes every time, readable by the prediction server's mix reader; only while some
deployment the caller may see serves it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deckhand.packages.mix import read_mix

URL = "/api/v1/deployments"


@pytest.fixture
def second(upload: Callable[[Path], dict], second_package: Path) -> dict:
    return upload(second_package)


def _served(api: TestClient, dep_id: str) -> str:
    return str(api.get(f"{URL}/{dep_id}").json()["servedModelId"])


def _agent(api: TestClient, name: str, env_ids: list[str]) -> dict[str, str]:
    response = api.post("/api/v1/tokens", json={"name": name, "role": "agent", "environmentIds": env_ids})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_a_canary_mix_downloads_with_its_checksum_and_members(
    api: TestClient, environment: dict, deployment: dict, package: dict, second: dict, tmp_path: Path
) -> None:
    dep_id = deployment["id"]
    body = {"modelPackageId": second["id"], "canary": {"percent": 25, "step": 25, "intervalSeconds": 60,
            "sticky": {"field": "sepal_length"}}}  # fmt: skip
    assert api.post(f"{URL}/{dep_id}/replace-model", json=body).status_code == 200
    served = _served(api, dep_id)
    agent = _agent(api, "agent-staging", [environment["id"]])

    first = api.get(f"/api/v1/model-packages/{served}/artifact", headers=agent)
    assert first.status_code == 200, first.text
    assert first.headers["x-checksum-sha256"] == hashlib.sha256(first.content).hexdigest()
    again = api.get(f"/api/v1/model-packages/{served}/artifact")
    assert again.content == first.content  # kept, and the same bytes for every caller

    (tmp_path / "mix.dhpkg").write_bytes(first.content)
    mix = read_mix(tmp_path / "mix.dhpkg")
    assert [(m.model_id, m.role, m.percent, m.sha256) for m in mix.members] == [
        (package["id"], "champion", 75, package["sha256"]),
        (second["id"], "canary", 25, second["sha256"]),
    ]
    assert mix.sticky == {"field": "sepal_length"}


def test_a_mix_is_built_the_same_by_any_replica(
    api: TestClient, deployment: dict, package: dict, second: dict, tmp_path: Path
) -> None:
    """Deleting the built file and building again gives the same checksum: replicas agree."""
    assert api.post(f"{URL}/{deployment['id']}/challengers", json={"modelPackageId": second["id"]}).status_code == 200
    served = _served(api, deployment["id"])
    first = api.get(f"/api/v1/model-packages/{served}/artifact")
    built = next(api.app.state.control_plane.artifacts.mixes_dir.glob("*.dhpkg"))  # type: ignore[attr-defined]
    built.unlink()
    rebuilt = api.get(f"/api/v1/model-packages/{served}/artifact")
    assert rebuilt.headers["x-checksum-sha256"] == first.headers["x-checksum-sha256"]


def test_only_a_mix_someone_serves_now_and_may_see_downloads(
    api: TestClient, environment: dict, deployment: dict, second: dict
) -> None:
    dep_id = deployment["id"]
    body = {"modelPackageId": second["id"], "canary": {"percent": 10, "step": 10, "intervalSeconds": 60}}
    assert api.post(f"{URL}/{dep_id}/replace-model", json=body).status_code == 200
    served = _served(api, dep_id)
    other = api.post("/api/v1/environments", json={"name": "elsewhere", "platform": "test"}).json()
    stranger = _agent(api, "agent-elsewhere", [other["id"]])
    refused = api.get(f"/api/v1/model-packages/{served}/artifact", headers=stranger)
    assert refused.status_code == 404 and "no live deployment serves the mix" in refused.json()["detail"]

    assert api.post(f"{URL}/{dep_id}/rollout/abort").status_code == 200
    gone = api.get(f"/api/v1/model-packages/{served}/artifact")
    assert gone.status_code == 404 and "follow the current desired state" in gone.json()["detail"]


def test_mixes_no_deployment_serves_are_removed_when_the_next_is_built(
    api: TestClient, deployment: dict, second: dict
) -> None:
    """Each canary step is a new mix holding whole packages: the ones no longer served go."""
    dep_id = deployment["id"]
    body = {"modelPackageId": second["id"], "canary": {"percent": 10, "step": 10, "intervalSeconds": 60}}
    assert api.post(f"{URL}/{dep_id}/replace-model", json=body).status_code == 200
    first = _served(api, dep_id)
    assert api.get(f"/api/v1/model-packages/{first}/artifact").status_code == 200
    mixes = api.app.state.control_plane.artifacts.mixes_dir  # type: ignore[attr-defined]
    assert (mixes / f"{first}.dhpkg").is_file()

    assert api.post(f"{URL}/{dep_id}/rollout/abort").status_code == 200
    assert api.post(f"{URL}/{dep_id}/challengers", json={"modelPackageId": second["id"]}).status_code == 200
    now = _served(api, dep_id)
    assert api.get(f"/api/v1/model-packages/{now}/artifact").status_code == 200
    assert sorted(p.name for p in mixes.iterdir()) == [f"{now}.dhpkg", f"{now}.sha256"]

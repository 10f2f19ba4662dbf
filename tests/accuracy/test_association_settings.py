"""A deployment's association-id settings: checked, kept, and carried to the prediction
server in its mix (one of the champion alone) and the desired state; the prediction
server's reading of the ids from a request."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deckhand.packages.mix import read_mix
from deckhand.serving.association import request_ids
from deckhand.serving.codecs import RequestError

URL = "/api/v1/deployments"


def test_settings_make_the_deployment_serve_a_mix_that_carries_them(
    api: TestClient, deployment: dict, tmp_path: Path
) -> None:
    dep_id = deployment["id"]
    champion = deployment["modelPackageId"]
    assert deployment["associationId"] is None and deployment["servedModelId"] == champion
    changed = api.patch(f"{URL}/{dep_id}", json={"associationId": {"column": "id"}})
    assert changed.status_code == 200, changed.text
    dep = changed.json()
    assert dep["associationId"] == {"column": "id", "generate": False}
    served = dep["servedModelId"]
    assert served.startswith("mix-") and dep["revision"] == deployment["revision"] + 1
    desired = api.get(f"/api/v1/agent/environments/{dep['environmentId']}/desired-state").json()
    entry = next(d for d in desired["deployments"] if d["id"] == dep_id)
    assert entry["servedModelId"] == served
    assert entry["traffic"]["associationId"] == {"column": "id", "generate": False}
    artifact = api.get(f"/api/v1/model-packages/{served}/artifact")
    assert artifact.status_code == 200, artifact.text
    (tmp_path / "mix.dhpkg").write_bytes(artifact.content)
    mix = read_mix(tmp_path / "mix.dhpkg")
    assert [(m.model_id, m.role, m.percent) for m in mix.members] == [(champion, "champion", 100)]
    assert mix.association == {"column": "id", "generate": False}
    other = api.patch(f"{URL}/{dep_id}", json={"associationId": {"column": "id", "generate": True}}).json()
    assert other["servedModelId"] not in (served, champion)  # any change of the settings: a new mix


def test_settings_need_a_column_or_generated_ids(api: TestClient, deployment: dict) -> None:
    response = api.patch(f"{URL}/{deployment['id']}", json={"associationId": {"generate": False}})
    assert response.status_code == 422 and "column" in response.text
    response = api.patch(f"{URL}/{deployment['id']}", json={"associationId": {"column": ""}})
    assert response.status_code == 422 and "associationId.column" in response.text


def test_the_server_reads_ids_from_json_csv_and_split_bodies() -> None:
    settings = {"column": "id", "generate": False}
    assert request_ids(b'[{"x": 1, "id": 7}, {"x": 2, "id": "b"}]', "application/json", settings, 2) == ["7", "b"]
    assert request_ids(b'{"data": [{"id": 3.0}]}', "application/json", settings, 1) == ["3"]
    split = b'{"columns": ["x", "id"], "data": [[1, "p"], [2, "q"]]}'
    assert request_ids(split, "application/json", settings, 2) == ["p", "q"]
    assert request_ids(b"x,id\n1,a\n2,b\n", "text/csv", settings, 2) == ["a", "b"]
    with pytest.raises(RequestError, match=r"row 1: no association id in column 'id'") as missing:
        request_ids(b'[{"id": "a"}, {"x": 1}]', "application/json", settings, 2)
    assert missing.value.status == 422
    generated = request_ids(b'[{"id": "a"}, {"x": 1}]', "application/json", {"column": "id", "generate": True}, 2)
    assert generated[0] == "a" and len(generated[1]) == 32
    with pytest.raises(RequestError, match="over 200"):
        request_ids(b'[{"id": "' + b"x" * 201 + b'"}]', "application/json", settings, 1)

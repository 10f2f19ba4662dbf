"""The OpenAPI document promises what the server answers: 400 for a body that is not JSON,
409 where a deployment is looked up by a name that may be shared, 401/403/404/413/422
where they can happen, and booleans that are booleans. (tests/server/test_api_fuzz.py
checks the same by fuzzing; these are the quick, named cases.)"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from deckhand.server.app import openapi_document
from deckhand.server.schemas import agent, deployments, environments, monitoring, tokens
from deckhand.server.schemas.common import RequestModel

DOC = openapi_document()
OPERATIONS = [
    (method.upper(), path, op)
    for path, item in DOC["paths"].items()
    for method, op in item.items()
    if path.startswith("/api/")
]
# Operations that find a deployment with services.lookup.find_deployment (by id or name).
BY_DEPLOYMENT_NAME = {
    ("GET", "/api/v1/deployments/{ref}"),
    ("PATCH", "/api/v1/deployments/{ref}"),
    ("DELETE", "/api/v1/deployments/{ref}"),
    ("POST", "/api/v1/deployments/{ref}/activate"),
    ("POST", "/api/v1/deployments/{ref}/deactivate"),
    ("POST", "/api/v1/deployments/{ref}/replace-model"),
    ("GET", "/api/v1/deployments/{ref}/revisions"),
    ("POST", "/api/v1/deployments/{ref}/rollback"),
    ("GET", "/api/v1/deployments/{ref}/rollout"),
    ("GET", "/api/v1/deployments/{ref}/rollouts"),
    ("POST", "/api/v1/deployments/{ref}/rollout/promote"),
    ("POST", "/api/v1/deployments/{ref}/rollout/abort"),
    ("GET", "/api/v1/deployments/{ref}/challengers"),
    ("POST", "/api/v1/deployments/{ref}/challengers"),
    ("DELETE", "/api/v1/deployments/{ref}/challengers/{package_id}"),
    ("POST", "/api/v1/deployments/{ref}/challengers/{package_id}/promote"),
    ("GET", "/api/v1/deployments/{ref}/monitoring/service-health"),
    ("GET", "/api/v1/deployments/{ref}/monitoring/predictions"),
    ("GET", "/api/v1/deployments/{ref}/monitoring/drift"),
    ("GET", "/api/v1/deployments/{ref}/monitoring/models"),
}


def _ids(value: Any) -> str:
    return f"{value[0]} {value[1]}" if isinstance(value, tuple) else str(value)


def _error_schema(op: dict[str, Any], code: str) -> str:
    return op["responses"][code]["content"]["application/json"]["schema"]["$ref"]


@pytest.mark.parametrize("operation", OPERATIONS, ids=_ids)
def test_every_api_operation_documents_401_and_422_as_error_responses(operation: tuple) -> None:
    _, _, op = operation
    for code in ("401", "422"):
        assert code in op["responses"]
        assert _error_schema(op, code) == "#/components/schemas/ErrorResponse"


@pytest.mark.parametrize(
    "operation",
    [o for o in OPERATIONS if "application/json" in o[2].get("requestBody", {}).get("content", {})],
    ids=_ids,
)
def test_operations_with_a_json_body_document_400(operation: tuple) -> None:
    assert "400" in operation[2]["responses"]


@pytest.mark.parametrize("operation", [o for o in OPERATIONS if "{" in o[1]], ids=_ids)
def test_operations_with_a_path_parameter_document_404(operation: tuple) -> None:
    assert "404" in operation[2]["responses"]


def test_lookups_of_a_deployment_by_name_document_409() -> None:
    assert BY_DEPLOYMENT_NAME <= {(m, p) for m, p, _ in OPERATIONS}
    missing = [f"{m} {p}" for m, p, op in OPERATIONS if (m, p) in BY_DEPLOYMENT_NAME and "409" not in op["responses"]]
    assert not missing


def test_the_upload_documents_400_403_and_413() -> None:
    responses = DOC["paths"]["/api/v1/model-packages"]["post"]["responses"]
    assert {"400", "403", "413"} <= set(responses)


def test_writes_document_403() -> None:
    missing = [f"{m} {p}" for m, p, op in OPERATIONS if m != "GET" and "403" not in op["responses"]]
    assert not missing


# -- what the server answers -------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00", b'{"name": "a",'])
def test_a_body_that_is_not_json_is_a_400_that_says_so(api: TestClient, body: bytes) -> None:
    response = api.post("/api/v1/environments", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("body: not")
    assert "application/json" in detail
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize("value", ["yes", 1, "true", 0, "off", None])
def test_a_boolean_field_refuses_what_is_not_a_boolean(api: TestClient, environment: dict, value: Any) -> None:
    response = api.post("/api/v1/environments", json={"name": "e2", "platform": "test", "monitoringEnabled": value})
    if value is None:  # optional: null means "the platform's default"
        assert response.status_code == 201, response.text
        return
    assert response.status_code == 422, response.text
    body = response.json()
    assert [e["field"] for e in body["errors"]] == ["monitoringEnabled"]
    assert "true or false" in body["detail"]


@pytest.mark.parametrize("value", ["yes", 1])
def test_a_deployment_active_flag_must_be_a_boolean(
    api: TestClient, environment: dict, package: dict, value: Any
) -> None:
    body = {"name": "d", "environmentId": environment["id"], "modelPackageId": package["id"], "active": value}
    response = api.post("/api/v1/deployments", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["active"]
    body["active"] = False
    assert api.post("/api/v1/deployments", json=body).status_code == 201


def test_every_boolean_request_field_is_strict() -> None:
    models: list[type[RequestModel]] = []
    for module in (agent, deployments, environments, monitoring, tokens):
        for _, member in inspect.getmembers(module, inspect.isclass):
            if issubclass(member, RequestModel) and member is not RequestModel:
                models.append(member)
    assert models
    lax = []
    for model in models:
        for name, info in model.model_fields.items():
            if "bool" in repr(info.annotation) and not _refuses(model, info.alias or name):
                lax.append(f"{model.__name__}.{name}")
    assert not lax, f"make these StrictBool: {lax}"


def _refuses(model: type[BaseModel], name: str) -> bool:
    """Whether field `name` (its wire name) refuses the string "yes"; other fields' errors are ignored."""
    from pydantic import ValidationError

    try:
        model.model_validate({name: "yes"})
    except ValidationError as exc:
        return any(err["loc"][:1] == (name,) for err in exc.errors())
    return False


def test_an_ambiguous_deployment_name_is_a_409_on_every_lookup(api: TestClient, package: dict) -> None:
    envs = [api.post("/api/v1/environments", json={"name": n, "platform": "test"}).json()["id"] for n in "ab"]
    for env in envs:
        body = {"name": "twin", "environmentId": env, "modelPackageId": package["id"]}
        assert api.post("/api/v1/deployments", json=body).status_code == 201
    for method, path in sorted(BY_DEPLOYMENT_NAME):
        url = path.replace("{ref}", "twin")
        json = {"modelPackageId": package["id"]} if path.endswith(("replace-model", "/challengers")) else {}
        response = api.request(method, url, json=json if method in ("POST", "PATCH") else None)
        assert response.status_code == 409, f"{method} {url}: {response.text}"
        assert "use the deployment id" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/api/v1/deployments/{ref}/monitoring/service-health", "ServiceHealth"),
        ("/api/v1/deployments/{ref}/monitoring/predictions", "PredictionDistribution"),
        ("/api/v1/deployments/{ref}/monitoring/drift", "FeatureDriftReport"),
        ("/api/v1/deployments/{ref}/monitoring/models", "ModelsMonitoring"),
    ],
)
def test_monitoring_queries_document_their_answers(path: str, model: str) -> None:
    schema = DOC["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"] == f"#/components/schemas/{model}"
    assert DOC["components"]["schemas"][model]["properties"]


@pytest.mark.parametrize("value", ["0.7706936607044163", "1733300000", "2026-12-04", "yesterday"])
@pytest.mark.parametrize("query", ["start", "end"])
@pytest.mark.parametrize("route", ["service-health", "predictions", "drift"])
def test_a_monitoring_window_is_a_date_and_time(
    api: TestClient, environment: dict, package: dict, route: str, query: str, value: str
) -> None:
    """`format: date-time`: a number is not read as Unix seconds, nor a date as midnight."""
    body = {"name": "w", "environmentId": environment["id"], "modelPackageId": package["id"]}
    deployment = api.post("/api/v1/deployments", json=body).json()["id"]
    response = api.get(f"/api/v1/deployments/{deployment}/monitoring/{route}", params={query: value})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [query]
    assert "ISO 8601 date and time" in response.json()["detail"]
    fine = api.get(f"/api/v1/deployments/{deployment}/monitoring/{route}", params={query: "2026-12-04T08:00:00Z"})
    assert fine.status_code == 200, fine.text

"""The public per-deployment routes both plugins expose (deckhand.plugins.public_routes)."""

from __future__ import annotations

from deckhand.plugins import public_routes
from deckhand.plugins.docker import names
from deckhand.plugins.docker.config import DockerConfig
from deckhand.plugins.kubernetes import manifests


def test_only_predictions_info_and_open_inference_are_public() -> None:
    assert [(r.method, r.path("d1")) for r in public_routes.PUBLIC_ROUTES] == [
        ("POST", "/deployments/d1/predictions"),
        ("POST", "/deployments/d1/predict"),
        ("GET", "/deployments/d1/info"),
        ("GET", "/deployments/d1"),
        ("POST", "/v2/models/d1/infer"),
        ("GET", "/v2/models/d1"),
        ("GET", "/v2/models/d1/ready"),
    ]
    assert public_routes.paths_by_method("d1") == {
        "POST": ["/deployments/d1/predictions", "/deployments/d1/predict", "/v2/models/d1/infer"],
        "GET": ["/deployments/d1/info", "/deployments/d1", "/v2/models/d1", "/v2/models/d1/ready"],
    }
    assert "DELETE" not in public_routes.paths_by_method("d1")


def test_both_plugins_follow_the_one_list(monkeypatch) -> None:
    """A route added to PUBLIC_ROUTES reaches the Traefik rule and the Ingress paths alike."""
    extra = public_routes.PublicRoute("POST", "/v3/models/{id}/generate")
    monkeypatch.setattr(public_routes, "PUBLIC_ROUTES", (*public_routes.PUBLIC_ROUTES, extra))
    assert "Path(`/v3/models/d1/generate`)" in names.traefik_rule("d1")
    assert manifests.ingress_paths("d1")[-1] == "/v3/models/d1/generate"


def test_the_plugins_expose_the_open_inference_routes() -> None:
    rule = names.traefik_rule("d1")
    assert "(Method(`POST`) && (" in rule and "Path(`/v2/models/d1/infer`)" in rule
    assert "Path(`/v2/models/d1/ready`)" in rule
    assert {"/v2/models/d1", "/v2/models/d1/ready", "/v2/models/d1/infer"} <= set(manifests.ingress_paths("d1"))


def test_prediction_urls_use_the_public_prediction_path() -> None:
    config = DockerConfig.from_mapping({"MLOPS_BOSUN_PRED_ENV_ID": "pe"})
    assert config.prediction_url("d1").endswith(public_routes.prediction_path("d1"))

"""The public per-deployment routes both plugins expose (deckhand.plugins.public_routes)."""

from __future__ import annotations

from deckhand.plugins import public_routes
from deckhand.plugins.docker import names
from deckhand.plugins.docker.config import DockerConfig
from deckhand.plugins.kubernetes import manifests


def test_only_predictions_and_info_are_public() -> None:
    assert [(r.method, r.path("d1")) for r in public_routes.PUBLIC_ROUTES] == [
        ("POST", "/deployments/d1/predictions"),
        ("POST", "/deployments/d1/predict"),
        ("GET", "/deployments/d1/info"),
        ("GET", "/deployments/d1"),
    ]
    assert public_routes.paths_by_method("d1") == {
        "POST": ["/deployments/d1/predictions", "/deployments/d1/predict"],
        "GET": ["/deployments/d1/info", "/deployments/d1"],
    }
    assert "DELETE" not in public_routes.paths_by_method("d1")


def test_both_plugins_follow_the_one_list(monkeypatch) -> None:
    """A route added to PUBLIC_ROUTES reaches the Traefik rule and the Ingress paths alike."""
    extra = public_routes.PublicRoute("POST", "/v2/infer")
    monkeypatch.setattr(public_routes, "PUBLIC_ROUTES", (*public_routes.PUBLIC_ROUTES, extra))
    assert "Path(`/deployments/d1/v2/infer`)" in names.traefik_rule("d1")
    assert manifests.ingress_paths("d1")[-1] == "/deployments/d1/v2/infer"


def test_prediction_urls_use_the_public_prediction_path() -> None:
    config = DockerConfig.from_mapping({"MLOPS_BOSUN_PRED_ENV_ID": "pe"})
    assert config.prediction_url("d1").endswith(public_routes.prediction_path("d1"))

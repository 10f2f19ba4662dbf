"""The prediction server's public per-deployment routes: what a proxy or an Ingress exposes.

A plugin that puts a prediction server behind a public entry point (the Docker plugin's
Traefik rule, the Kubernetes plugin's Ingress) routes exactly these, by exact path, and
nothing else of a deployment's route trees (`DEPLOYMENT_PREFIXES`): uploading a package
(`POST /deployments/<id>`) runs its code and `DELETE /deployments/<id>` removes a model,
so model changes go through the agent, never through the public entry point. A new
public route is added here, once, and both plugins pick it up.

The Open Inference Protocol's routes (`/v2/models/<id>`, `.../ready`, `.../infer`) are
public; their `/versions/<model id>/...` forms are served but not exposed: an exact-path
rule cannot name a version that changes with each model replacement.
"""

from __future__ import annotations

from dataclasses import dataclass

DEPLOYMENTS_PATH = "/deployments"
DEPLOYMENT_ID = "{id}"  # the deployment id in a template; also the server's route capture
# The prediction server's per-deployment route trees (templates); only PUBLIC_ROUTES of them are exposed.
DEPLOYMENT_PREFIXES = (f"{DEPLOYMENTS_PATH}/{DEPLOYMENT_ID}", f"/v2/models/{DEPLOYMENT_ID}")


@dataclass(frozen=True)
class PublicRoute:
    """A method and a path template whose `{id}` is the deployment id."""

    method: str
    template: str

    def path(self, deployment_id: str) -> str:
        return self.template.replace(DEPLOYMENT_ID, deployment_id)


PREDICTIONS = PublicRoute("POST", "/deployments/{id}/predictions")
PUBLIC_ROUTES: tuple[PublicRoute, ...] = (
    PREDICTIONS,
    PublicRoute("POST", "/deployments/{id}/predict"),
    PublicRoute("GET", "/deployments/{id}/info"),
    PublicRoute("GET", "/deployments/{id}"),
    # the Open Inference Protocol (KServe v2 / Triton REST): serving.openinference_api
    PublicRoute("POST", "/v2/models/{id}/infer"),
    PublicRoute("GET", "/v2/models/{id}"),
    PublicRoute("GET", "/v2/models/{id}/ready"),
)


def prediction_path(deployment_id: str) -> str:
    """The path of a deployment's prediction URL (what plugins report as predictionUrl)."""
    return PREDICTIONS.path(deployment_id)


def public_paths(deployment_id: str) -> list[str]:
    """Every public path of the deployment, each once, in PUBLIC_ROUTES order."""
    return list(dict.fromkeys(route.path(deployment_id) for route in PUBLIC_ROUTES))


def paths_by_method(deployment_id: str) -> dict[str, list[str]]:
    """The public paths of the deployment grouped by HTTP method, in PUBLIC_ROUTES order."""
    grouped: dict[str, list[str]] = {}
    for route in PUBLIC_ROUTES:
        grouped.setdefault(route.method, []).append(route.path(deployment_id))
    return grouped

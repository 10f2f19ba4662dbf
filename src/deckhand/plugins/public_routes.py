"""The prediction server's public per-deployment routes: what a proxy or an Ingress exposes.

A plugin that puts a prediction server behind a public entry point (the Docker plugin's
Traefik rule, the Kubernetes plugin's Ingress) routes exactly these, and nothing else under
`/deployments/<id>`: uploading a package (`POST /deployments/<id>`) runs its code and
`DELETE /deployments/<id>` removes a model, so model changes go through the agent, never
through the public entry point. A new public route (e.g. the Open Inference Protocol's
`/v2/...`) is added here, once, and both plugins pick it up.
"""

from __future__ import annotations

from dataclasses import dataclass

DEPLOYMENTS_PATH = "/deployments"


@dataclass(frozen=True)
class PublicRoute:
    """A method and a path under `/deployments/<id>` (`suffix` "" is `/deployments/<id>` itself)."""

    method: str
    suffix: str

    def path(self, deployment_id: str) -> str:
        return f"{deployment_path(deployment_id)}{self.suffix}"


PREDICTIONS = PublicRoute("POST", "/predictions")
PUBLIC_ROUTES: tuple[PublicRoute, ...] = (
    PREDICTIONS,
    PublicRoute("POST", "/predict"),
    PublicRoute("GET", "/info"),
    PublicRoute("GET", ""),
)


def deployment_path(deployment_id: str) -> str:
    return f"{DEPLOYMENTS_PATH}/{deployment_id}"


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

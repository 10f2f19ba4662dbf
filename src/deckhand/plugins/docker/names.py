"""Names and labels of everything the Docker plugin creates, defined once.

A deployment's container is `<containerNamePrefix>deployment_<deploymentId>_<modelId>`
(bosun's documented naming), and carries labels that say it is ours, for which environment,
deployment and model; the engine's state is the plugin's only memory.
"""

from __future__ import annotations

import hashlib
import re

from deckhand.plugins import public_routes

LABEL_MANAGED = "io.deckhand.managed-by"
MANAGED_VALUE = "deckhand-docker-plugin"
LABEL_ENVIRONMENT = "io.deckhand.environment"
LABEL_ROLE = "io.deckhand.role"
LABEL_DEPLOYMENT = "io.deckhand.deployment-id"
LABEL_MODEL = "io.deckhand.model-id"
LABEL_GENERATION = "io.deckhand.generation"
LABEL_PACKAGE_SHA = "io.deckhand.package-sha256"

ROLE_MODEL = "model"
ROLE_PROXY = "proxy"
ROLE_RABBITMQ = "rabbitmq"
ROLE_TRACKING_AGENT = "tracking-agent"

MODEL_PACKAGE_PATH = "/opt/deckhand/model/model.dhpkg"
MONITORING_QUEUE = "deckhand-monitoring"
PPS_PORT = 8080

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_ROUTER_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


def _safe(value: str, pattern: re.Pattern[str], limit: int) -> str:
    cleaned = pattern.sub("-", value)
    if cleaned != value or len(cleaned) > limit:
        digest = hashlib.sha256(value.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[: limit - 9]}-{digest}"
    return cleaned


def container_name(prefix: str, deployment_id: str, model_id: str) -> str:
    return f"{prefix}deployment_{_safe(deployment_id, _UNSAFE, 80)}_{_safe(model_id, _UNSAFE, 80)}"


def shared_name(prefix: str, role: str, environment_id: str) -> str:
    """The proxy, RabbitMQ and tracking-agent containers: one per environment."""
    return f"{prefix}{role}_{_safe(environment_id, _UNSAFE, 60)}"


def router_name(deployment_id: str, model_id: str) -> str:
    """Traefik router/service name: no '.' or '@' (they split label keys and providers)."""
    return f"d-{_safe(deployment_id, _ROUTER_UNSAFE, 60)}-m-{_safe(model_id, _ROUTER_UNSAFE, 60)}"


def image_tag(model_id: str) -> str:
    return f"m-{_safe(model_id, _UNSAFE, 120)}"


def base_labels(environment_id: str, role: str) -> dict[str, str]:
    return {LABEL_MANAGED: MANAGED_VALUE, LABEL_ENVIRONMENT: environment_id, LABEL_ROLE: role}


def label_filter(environment_id: str, role: str | None = None, deployment_id: str | None = None) -> list[str]:
    """Docker `label=` filters selecting our objects."""
    filters = [f"{LABEL_MANAGED}={MANAGED_VALUE}", f"{LABEL_ENVIRONMENT}={environment_id}"]
    if role:
        filters.append(f"{LABEL_ROLE}={role}")
    if deployment_id is not None:
        filters.append(f"{LABEL_DEPLOYMENT}={deployment_id}")
    return filters


def traefik_rule(deployment_id: str) -> str:
    """A Traefik router rule matching only the deployment's public routes, by method and exact
    path (public_routes.PUBLIC_ROUTES): `POST /deployments/<id>` (an upload) and `DELETE` match
    nothing, so the proxy answers 404 itself and they never reach the server. One method and
    one path per matcher: the syntax Traefik v3 requires (and v2 accepts)."""
    alternatives = []
    for method, paths in public_routes.paths_by_method(deployment_id).items():
        matched = " || ".join(f"Path(`{path}`)" for path in paths)
        alternatives.append(f"(Method(`{method}`) && ({matched}))")
    return " || ".join(alternatives)


def traefik_labels(
    environment_id: str, network: str, deployment_id: str, model_id: str, priority: int
) -> dict[str, str]:
    """Labels that route the deployment's public routes (traefik_rule) to this container. When
    two containers of a deployment are up (a replacement), the higher priority (the newer one) wins."""
    router = router_name(deployment_id, model_id)
    return {
        "traefik.enable": "true",
        "traefik.docker.network": network,
        f"traefik.http.routers.{router}.rule": traefik_rule(deployment_id),
        f"traefik.http.routers.{router}.entrypoints": "web",
        f"traefik.http.routers.{router}.priority": str(priority),
        f"traefik.http.routers.{router}.service": router,
        f"traefik.http.services.{router}.loadbalancer.server.port": str(PPS_PORT),
    }


def amqp_url(rabbitmq_host: str) -> str:
    return f"amqp://guest:guest@{rabbitmq_host}:5672/%2F?queue={MONITORING_QUEUE}"

"""Docker plugin settings (bosun's documented keys), from pluginConfig merged with the private config.

Every key is defined here once; defaults point at the images `make -C images all` builds.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from deckhand import __version__
from deckhand.plugin.action_config import truthy
from deckhand.plugin.constants import BosunPluginConfigConstants
from deckhand.plugin.errors import ConfigError, describe
from deckhand.plugins.public_routes import prediction_path

# bosun's documented keys ("Configure the Docker plugin").
DOCKER_NETWORK = "dockerNetwork"
TRAEFIK_IMAGE = "traefikImage"
OUTFACING_URL_PREFIX = "outfacingPredictionURLPrefix"
AGENT_IMAGE = "agentImage"
RABBITMQ_IMAGE = "rabbitmqImage"
PPS_BASE_IMAGE = "ppsBaseImage"
GENERATED_IMAGE_PREFIX = "generatedImagePrefix"
CONTAINER_NAME_PREFIX = "containerNamePrefix"
TRAEFIK_PORT_MAPPING = "traefikPortMapping"
RABBITMQ_PORT_MAPPING = "rabbitmqPortMapping"
# Ours.
DOCKER_HOST = "dockerHost"
PORT_BIND_ADDRESS = "portBindAddress"
START_TIMEOUT = "startTimeoutSeconds"
MONITORING = "monitoring"
MONITORING_SERVER_URL = "monitoringServerUrl"

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
TRAEFIK_WEB_PORT = 80
TRAEFIK_API_PORT = 8080
RABBITMQ_AMQP_PORT = 5672
RABBITMQ_MANAGEMENT_PORT = 15672

DEFAULTS: dict[str, Any] = {
    DOCKER_NETWORK: "bosun",
    TRAEFIK_IMAGE: f"deckhand-proxy:{__version__}",
    OUTFACING_URL_PREFIX: "",
    AGENT_IMAGE: f"deckhand-tracking-agent:{__version__}",
    RABBITMQ_IMAGE: f"deckhand-rabbitmq:{__version__}",
    PPS_BASE_IMAGE: f"deckhand-pps:{__version__}",
    GENERATED_IMAGE_PREFIX: "mlops_",
    CONTAINER_NAME_PREFIX: "mlops_",
    TRAEFIK_PORT_MAPPING: {TRAEFIK_WEB_PORT: 81, TRAEFIK_API_PORT: 8081},
    RABBITMQ_PORT_MAPPING: {},
    DOCKER_HOST: None,  # DOCKER_HOST from the environment, else the default socket
    PORT_BIND_ADDRESS: "127.0.0.1",
    START_TIMEOUT: 60,
    MONITORING: None,  # None: follow MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING
    MONITORING_SERVER_URL: None,  # None: mlopsUrl as seen from a container
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]*$")
_REPO = re.compile(r"^[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*$")


def _port_mapping(key: str, value: Any, known: tuple[int, ...]) -> dict[int, int]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping of container port to host port, got {describe(value)}")
    mapping: dict[int, int] = {}
    for container_port, host_port in value.items():
        try:
            c, h = int(container_port), int(host_port)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{key}.{container_port}", f"expected port numbers, got {describe(host_port)}", "e.g. {80: 81}"
            ) from None
        if c not in known:
            raise ConfigError(f"{key}.{c}", f"unknown container port {c}", f"use one of {', '.join(map(str, known))}")
        if not 0 < h < 65536:
            raise ConfigError(f"{key}.{c}", f"host port {h} is out of range", "use 1-65535")
        mapping[c] = h
    return mapping


def container_reachable_url(url: str) -> str:
    """A control plane URL on this host as a container sees it (host.docker.internal)."""
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost", "0.0.0.0", "::1"):
        netloc = "host.docker.internal" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@dataclass(frozen=True)
class DockerConfig:
    environment_id: str
    network: str
    traefik_image: str
    outfacing_url_prefix: str
    agent_image: str
    rabbitmq_image: str
    pps_base_image: str
    image_repository: str
    container_prefix: str
    traefik_ports: dict[int, int]
    rabbitmq_ports: dict[int, int]
    docker_host: str
    bind_address: str
    start_timeout: float
    monitoring: bool
    mlops_url: str | None
    monitoring_server_url: str | None
    api_token: str | None

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> DockerConfig:
        merged = {**DEFAULTS, **{k: v for k, v in values.items() if k in DEFAULTS and v is not None}}
        for key in (DOCKER_NETWORK, TRAEFIK_IMAGE, AGENT_IMAGE, RABBITMQ_IMAGE, PPS_BASE_IMAGE, PORT_BIND_ADDRESS):
            if not isinstance(merged[key], str) or not merged[key]:
                raise ConfigError(key, f"expected a non-empty string, got {describe(merged[key])}")
        if not _NAME.match(merged[DOCKER_NETWORK]):
            raise ConfigError(DOCKER_NETWORK, f"{merged[DOCKER_NETWORK]!r} is not a valid Docker network name")
        for key in (GENERATED_IMAGE_PREFIX, CONTAINER_NAME_PREFIX):
            if not isinstance(merged[key], str) or not _PREFIX.match(merged[key]):
                raise ConfigError(key, f"expected letters, digits, '_', '.', '-', got {describe(merged[key])}")
        prefix = merged[GENERATED_IMAGE_PREFIX] or "deckhand-model"
        # The documented "mlops_" is a prefix, not a repository name: "mlops_" -> "mlops_model".
        repository = prefix if _REPO.match(prefix) else f"{prefix}model"
        if not _REPO.match(repository):
            raise ConfigError(
                GENERATED_IMAGE_PREFIX,
                f"{prefix!r} does not make a valid image repository name",
                "use lowercase letters, digits and '_', '.', '-' (e.g. 'mlops_' or 'registry.local/mlops-model')",
            )
        url = merged[OUTFACING_URL_PREFIX]
        if not isinstance(url, str):
            raise ConfigError(OUTFACING_URL_PREFIX, f"expected a URL, got {describe(url)}")
        traefik_ports = _port_mapping(
            TRAEFIK_PORT_MAPPING, merged[TRAEFIK_PORT_MAPPING], (TRAEFIK_WEB_PORT, TRAEFIK_API_PORT)
        )
        rabbit_ports = _port_mapping(
            RABBITMQ_PORT_MAPPING, merged[RABBITMQ_PORT_MAPPING], (RABBITMQ_AMQP_PORT, RABBITMQ_MANAGEMENT_PORT)
        )
        bind = merged[PORT_BIND_ADDRESS]
        if not url:
            if TRAEFIK_WEB_PORT not in traefik_ports:
                raise ConfigError(
                    OUTFACING_URL_PREFIX,
                    "is empty and traefikPortMapping does not publish port 80",
                    "set outfacingPredictionURLPrefix to the URL clients use, or map 80 to a host port",
                )
            host = "localhost" if bind in ("0.0.0.0", "127.0.0.1") else bind
            url = f"http://{host}:{traefik_ports[TRAEFIK_WEB_PORT]}"
        elif urlsplit(url).scheme not in ("http", "https"):
            raise ConfigError(OUTFACING_URL_PREFIX, f"{url!r} is not an http(s) URL", "e.g. http://models.example:81")
        try:
            timeout = float(merged[START_TIMEOUT])
        except (TypeError, ValueError):
            raise ConfigError(START_TIMEOUT, f"expected seconds, got {describe(merged[START_TIMEOUT])}") from None
        if timeout <= 0:
            raise ConfigError(START_TIMEOUT, f"expected a positive number of seconds, got {timeout}")
        docker_host = merged[DOCKER_HOST] or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        if not isinstance(docker_host, str) or not docker_host.startswith(("unix://", "tcp://", "ssh://", "http")):
            raise ConfigError(DOCKER_HOST, f"expected unix:///path or tcp://host:port, got {describe(docker_host)}")
        monitoring = merged[MONITORING]
        if monitoring is None:
            monitoring = values.get(BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING_KEY, False)
        mlops_url = values.get(BosunPluginConfigConstants.MLOPS_URL) or values.get(
            BosunPluginConfigConstants.MLOPS_URL_KEY
        )
        monitoring_url = merged[MONITORING_SERVER_URL] or (container_reachable_url(mlops_url) if mlops_url else None)
        return cls(
            environment_id=str(values.get(BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_ID_KEY) or "default"),
            network=merged[DOCKER_NETWORK],
            traefik_image=merged[TRAEFIK_IMAGE],
            outfacing_url_prefix=url.rstrip("/"),
            agent_image=merged[AGENT_IMAGE],
            rabbitmq_image=merged[RABBITMQ_IMAGE],
            pps_base_image=merged[PPS_BASE_IMAGE],
            image_repository=repository,
            container_prefix=merged[CONTAINER_NAME_PREFIX],
            traefik_ports=traefik_ports,
            rabbitmq_ports=rabbit_ports,
            docker_host=docker_host,
            bind_address=bind,
            start_timeout=timeout,
            monitoring=truthy(monitoring),
            mlops_url=mlops_url,
            monitoring_server_url=monitoring_url,
            api_token=values.get(BosunPluginConfigConstants.MLOPS_API_TOKEN_KEY),
        )

    def prediction_url(self, deployment_id: str) -> str:
        return f"{self.outfacing_url_prefix}{prediction_path(deployment_id)}"

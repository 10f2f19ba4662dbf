"""The environment's shared containers: the network, the Traefik proxy and, with monitoring
on, RabbitMQ and the tracking agent. Every `ensure_*` is idempotent: it creates what is
missing, restarts what stopped, replaces what was created from another configuration
(a `spec` label holds a digest of it), and leaves the rest alone."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from deckhand.plugin.constants import BosunPluginConfigConstants
from deckhand.plugins.docker import names
from deckhand.plugins.docker.config import (
    DOCKER_NETWORK,
    MONITORING_SERVER_URL,
    RABBITMQ_PORT_MAPPING,
    TRAEFIK_API_PORT,
    TRAEFIK_PORT_MAPPING,
    TRAEFIK_WEB_PORT,
    DockerConfig,
)
from deckhand.plugins.docker.engine import EngineError, describe_api_error

log = logging.getLogger("deckhand.plugins.docker")

LABEL_SPEC = "io.deckhand.spec"
SOCKET_MOUNT_DIR = "/var/run/deckhand-engine"
PROXY_READY_TIMEOUT = 15.0


def _spec_digest(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ----- network ---------------------------------------------------------------------------
def ensure_network(client: Any, config: DockerConfig) -> tuple[Any, bool]:
    """The dockerNetwork, created (labelled ours) when missing. Returns (network, created)."""
    import docker.errors

    found = client.networks.list(names=[config.network])
    exact = [n for n in found if n.name == config.network]
    if exact:
        return exact[0], False
    try:
        network = client.networks.create(
            config.network,
            driver="bridge",
            check_duplicate=True,
            labels=names.base_labels(config.environment_id, "network"),
        )
    except docker.errors.APIError as exc:
        again = [n for n in client.networks.list(names=[config.network]) if n.name == config.network]
        if again:  # created meanwhile by a parallel action
            return again[0], False
        raise EngineError(
            f"{DOCKER_NETWORK} {config.network!r} is missing and could not be created: {describe_api_error(exc)}; "
            f"create it (docker network create {config.network}) or choose another {DOCKER_NETWORK}"
        ) from None
    log.info("event=network_created network=%s", config.network)
    return network, True


def remove_network_if_ours(client: Any, config: DockerConfig) -> str | None:
    import docker.errors

    for network in client.networks.list(names=[config.network]):
        if network.name != config.network:
            continue
        labels = network.attrs.get("Labels") or {}
        if labels.get(names.LABEL_MANAGED) != names.MANAGED_VALUE:
            return None  # created by someone else: theirs to remove
        network.reload()
        if network.attrs.get("Containers"):
            return None  # still in use (another environment, or a container of someone else)
        try:
            network.remove()
        except docker.errors.APIError as exc:
            log.warning("event=network_remove_failed network=%s error=%r", config.network, describe_api_error(exc))
            return None
        return config.network
    return None


# ----- generic container helpers ------------------------------------------------------------
def get_container(client: Any, name: str) -> Any | None:
    import docker.errors

    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def remove_container(container: Any, stop_timeout: int = 10) -> None:
    import docker.errors

    try:
        if container.status in ("running", "restarting"):
            container.stop(timeout=stop_timeout)
        container.remove(v=True, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "removal of container" in str(exc) and "already in progress" in str(exc):
            return
        raise EngineError(f"removing container {container.name} failed: {describe_api_error(exc)}") from None


def port_conflict_message(key: str, mapping: dict[int, int], bind: str, exc: BaseException) -> str:
    ports = ", ".join(f"{c}: {h}" for c, h in sorted(mapping.items()))
    return (
        f"a host port of {key} ({ports}) on {bind} is already in use ({describe_api_error(exc)}); "
        f"free it or map to other host ports in {key}"
    )


def _run(client: Any, name: str, spec: dict[str, Any], port_key: str | None = None, mapping=None, bind="") -> Any:
    """Create and start a container from spec; a taken port becomes a clear EngineError."""
    import docker.errors

    labels = {**spec.get("labels", {}), LABEL_SPEC: _spec_digest(spec)}
    container = None
    try:
        container = client.containers.create(name=name, **{**spec, "labels": labels})
        container.start()
    except docker.errors.ImageNotFound:
        if container is not None:
            remove_container(container)
        raise EngineError(
            f"image {spec['image']} for {name} is not on the engine; build it (make -C images all) or set the "
            "image key of the plugin config to one the engine has"
        ) from None
    except docker.errors.APIError as exc:
        if container is None and exc.status_code == 409:
            existing = get_container(client, name)
            if existing is not None:  # created meanwhile by a parallel action: use it
                return existing
        if container is not None:
            remove_container(container)
        text = str(exc)
        if port_key and ("port is already allocated" in text or "address already in use" in text):
            raise EngineError(port_conflict_message(port_key, mapping or {}, bind, exc)) from None
        raise EngineError(f"starting container {name} failed: {describe_api_error(exc)}") from None
    container.reload()
    return container


def _ensure(client: Any, name: str, spec: dict[str, Any], **run_kwargs: Any) -> tuple[Any, str | None]:
    """(container, what was done or None when it was already fine)."""
    import docker.errors

    container = get_container(client, name)
    if container is not None and (container.labels or {}).get(LABEL_SPEC) != _spec_digest(spec):
        remove_container(container)
        return _run(client, name, spec, **run_kwargs), "recreated with the current configuration"
    if container is None:
        return _run(client, name, spec, **run_kwargs), "created"
    if container.status == "running":
        return container, None
    try:
        container.start()
    except docker.errors.APIError:
        remove_container(container)
        return _run(client, name, spec, **run_kwargs), "recreated (it did not restart)"
    container.reload()
    return container, "restarted"


def _ports(mapping: dict[int, int], bind: str) -> dict[str, tuple[str, int]]:
    return {f"{c}/tcp": (bind, h) for c, h in mapping.items()}


def _socket_mount(docker_host: str) -> tuple[dict[str, dict[str, str]], str]:
    """How the proxy reaches the engine: (volumes, endpoint). The socket's directory is
    mounted when it is a dedicated one, so the proxy keeps working after the engine
    restarts and recreates its socket file."""
    if not docker_host.startswith("unix://"):
        return {}, docker_host
    path = os.path.realpath(docker_host[len("unix://") :])  # a symlink would dangle inside the container
    parent, base = os.path.split(path)
    if parent in ("/var/run", "/run", ""):
        return {path: {"bind": "/var/run/docker.sock", "mode": "ro"}}, "unix:///var/run/docker.sock"
    return {parent: {"bind": SOCKET_MOUNT_DIR, "mode": "ro"}}, f"unix://{SOCKET_MOUNT_DIR}/{base}"


# ----- the proxy ----------------------------------------------------------------------------
def proxy_name(config: DockerConfig) -> str:
    return names.shared_name(config.container_prefix, "traefik", config.environment_id)


def proxy_spec(config: DockerConfig) -> dict[str, Any]:
    volumes, endpoint = _socket_mount(config.docker_host)
    command = [
        f"--entrypoints.web.address=:{TRAEFIK_WEB_PORT}",
        f"--entrypoints.traefik.address=:{TRAEFIK_API_PORT}",
        "--api.insecure=true",
        "--ping=true",
        "--providers.docker=true",
        f"--providers.docker.endpoint={endpoint}",
        "--providers.docker.exposedbydefault=false",
        f"--providers.docker.network={config.network}",
        # Only this environment's containers, even if the engine runs several.
        f"--providers.docker.constraints=Label(`{names.LABEL_ENVIRONMENT}`,`{config.environment_id}`)",
        "--providers.providersThrottleDuration=200ms",
        "--log.level=WARN",
    ]
    return {
        "image": config.traefik_image,
        "command": command,
        "labels": names.base_labels(config.environment_id, names.ROLE_PROXY),
        "network": config.network,
        "ports": _ports(config.traefik_ports, config.bind_address),
        "volumes": volumes,
        "restart_policy": {"Name": "unless-stopped"},
    }


def ensure_proxy(client: Any, config: DockerConfig) -> tuple[Any, str | None]:
    return _ensure(
        client,
        proxy_name(config),
        proxy_spec(config),
        port_key=TRAEFIK_PORT_MAPPING,
        mapping=config.traefik_ports,
        bind=config.bind_address,
    )


def container_ip(container: Any, network: str) -> str | None:
    networks = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    ip = (networks.get(network) or {}).get("IPAddress")
    return ip or None


def traefik_api(config: DockerConfig, proxy: Any) -> str | None:
    """Base URL of Traefik's API as this process reaches it."""
    if TRAEFIK_API_PORT in config.traefik_ports:
        host = "127.0.0.1" if config.bind_address in ("0.0.0.0", "127.0.0.1") else config.bind_address
        return f"http://{host}:{config.traefik_ports[TRAEFIK_API_PORT]}"
    ip = container_ip(proxy, config.network)
    return f"http://{ip}:{TRAEFIK_API_PORT}" if ip else None


def _get_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def wait_proxy_ready(api: str | None, timeout: float = PROXY_READY_TIMEOUT) -> str | None:
    """None when Traefik answers /ping, else why not."""
    if api is None:
        return "the proxy has no reachable API address"
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api}/ping", timeout=2.0) as response:
                if response.status == 200:
                    return None
                last = f"HTTP {response.status}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.2)
    return f"the proxy's API {api} did not answer /ping within {timeout:.0f} s ({last})"


def routers(api: str | None) -> dict[str, dict[str, Any]] | None:
    """Traefik's HTTP routers from the Docker provider, by name (None: API unreachable)."""
    if api is None:
        return None
    try:
        status, body = _get_json(f"{api}/api/http/routers?per_page=1000")
    except (OSError, urllib.error.URLError, ValueError):
        return None
    if status != 200 or not isinstance(body, list):
        return None
    return {r["name"].split("@")[0]: r for r in body if r.get("provider") == "docker"}


UNVERIFIED_ROUTE_WAIT = 3.0


def wait_route(api: str | None, router: str, present: bool, timeout: float) -> bool:
    """Wait until Traefik has (or no longer has) the router; False on timeout. When its API
    cannot be reached from here at all, wait a few provider refreshes and assume it did."""
    deadline = time.monotonic() + timeout
    answered = False
    while time.monotonic() < deadline:
        found = routers(api)
        if found is not None:
            answered = True
            has = router in found and found[router].get("status") == "enabled"
            if has == present:
                return True
        elif not answered and time.monotonic() > deadline - timeout + UNVERIFIED_ROUTE_WAIT:
            log.warning("event=route_unverified router=%s api=%s", router, api)
            return True
        time.sleep(0.1)
    return False


# ----- monitoring: RabbitMQ and the tracking agent ------------------------------------------
def rabbitmq_name(config: DockerConfig) -> str:
    return names.shared_name(config.container_prefix, "rabbitmq", config.environment_id)


def tracking_agent_name(config: DockerConfig) -> str:
    return names.shared_name(config.container_prefix, "tracking-agent", config.environment_id)


def monitoring_channel(config: DockerConfig) -> str:
    return names.amqp_url(rabbitmq_name(config))


def ensure_monitoring(client: Any, config: DockerConfig) -> list[str]:
    """RabbitMQ and a tracking agent wired to the control plane; what was done."""
    if not config.monitoring_server_url:
        raise EngineError(
            f"monitoring is enabled but the control plane URL is unknown; set mlopsUrl or {MONITORING_SERVER_URL} "
            "in the plugin config (an address containers reach, e.g. http://host.docker.internal:8000)"
        )
    done = []
    rabbit_spec = {
        "image": config.rabbitmq_image,
        "labels": names.base_labels(config.environment_id, names.ROLE_RABBITMQ),
        "network": config.network,
        "ports": _ports(config.rabbitmq_ports, config.bind_address),
        "restart_policy": {"Name": "unless-stopped"},
    }
    _, what = _ensure(
        client,
        rabbitmq_name(config),
        rabbit_spec,
        port_key=RABBITMQ_PORT_MAPPING,
        mapping=config.rabbitmq_ports,
        bind=config.bind_address,
    )
    if what:
        done.append(f"RabbitMQ {what}")
    token = config.api_token or ""
    agent_spec = {
        "image": config.agent_image,
        "command": ["--channel", monitoring_channel(config), "--server", config.monitoring_server_url],
        # The token goes in the environment, never on the command line (ps, logs, events).
        "environment": {"DECKHAND_TOKEN": token, BosunPluginConfigConstants.MLOPS_API_TOKEN_ENV: token},
        "labels": names.base_labels(config.environment_id, names.ROLE_TRACKING_AGENT),
        "network": config.network,
        "extra_hosts": {"host.docker.internal": "host-gateway"},
        "restart_policy": {"Name": "unless-stopped"},
    }
    _, what = _ensure(client, tracking_agent_name(config), agent_spec)
    if what:
        done.append(f"tracking agent {what}")
    return done


def shared_containers(client: Any, config: DockerConfig) -> list[Any]:
    found = []
    for role in (names.ROLE_TRACKING_AGENT, names.ROLE_RABBITMQ, names.ROLE_PROXY):
        found.extend(
            client.containers.list(all=True, filters={"label": names.label_filter(config.environment_id, role)})
        )
    return found


@contextlib.contextmanager
def _environment_lock(config: DockerConfig) -> Iterator[None]:
    """One ensure at a time per environment and engine on this machine: the agent runs actions
    of different deployments in parallel, and the engine does not stop two creations of a
    network with the same name (`check_duplicate` is best effort)."""
    key = hashlib.sha256(f"{config.docker_host}|{config.environment_id}".encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"deckhand-docker-{key}.lock")
    try:
        handle = open(path, "a")  # noqa: SIM115 - closed below
    except OSError:  # another user's lock file: go on without (conflicts are handled too)
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_all(client: Any, config: DockerConfig) -> list[str]:
    """Network, proxy (answering /ping) and, with monitoring on, RabbitMQ and the tracking agent."""
    with _environment_lock(config):
        return _ensure_all(client, config)


def _ensure_all(client: Any, config: DockerConfig) -> list[str]:
    done = []
    _, created = ensure_network(client, config)
    if created:
        done.append(f"network {config.network} created")
    proxy, what = ensure_proxy(client, config)
    if what:
        done.append(f"proxy {what}")
        problem = wait_proxy_ready(traefik_api(config, proxy))
        if problem:
            proxy.reload()
            if proxy.status != "running":
                logs = proxy.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
                raise EngineError(f"the proxy {proxy.name} is {proxy.status}: {logs or 'no log'}")
            # Running, but its API is not reachable from here (say, this agent runs in a
            # container of another network): go on; routes are then not verified either.
            log.warning("event=proxy_api_unreachable proxy=%s problem=%r", proxy.name, problem)
    if config.monitoring:
        done.extend(ensure_monitoring(client, config))
    return done

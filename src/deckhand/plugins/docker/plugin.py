"""The Docker plugin: each deployment is a prediction-server container built from
ppsBaseImage plus the model package, behind one Traefik proxy that routes
`<outfacingPredictionURLPrefix>/deployments/<id>/predictions` to it from the container's
labels (Traefik's Docker provider), with RabbitMQ and the tracking agent beside them when
monitoring is on.

The engine is the plugin's only memory: containers carry labels naming the environment,
deployment and model, so `deployment_list`, `deployment_status` and `pe_status` read the
engine and a restarted agent adopts what it started before. Every action is idempotent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo, failing_status
from deckhand.plugin.base import BosunPluginBase
from deckhand.plugin.constants import BosunPluginActions, DeploymentState
from deckhand.plugin.deployment_info import DeploymentInfo
from deckhand.plugin.errors import ConfigError, PluginError
from deckhand.plugins.docker import infra, names
from deckhand.plugins.docker.config import START_TIMEOUT, DockerConfig
from deckhand.plugins.docker.engine import (
    EngineError,
    EngineUnreachable,
    connect,
    describe_api_error,
    is_connection_error,
    unreachable_message,
)
from deckhand.plugins.docker.images import ensure_model_image

# How the model container starts the server: ServeConfig as JSON in the environment (the
# same hand-over `deckhand serve --workers N` uses), so the deployment id is the one the
# server routes (`/deployments/<id>/predictions`) and reports to monitoring.
SERVE_CONFIG_ENV = "DECKHAND_SERVE_CONFIG"
SERVE_SCRIPT = (
    "import os\n"
    "from deckhand.serving.config import ServeConfig\n"
    "from deckhand.serving.runner import run\n"
    f"run(ServeConfig.model_validate_json(os.environ['{SERVE_CONFIG_ENV}']))\n"
)
HEALTH_TEST = [
    "CMD",
    "python",
    "-c",
    f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{names.PPS_PORT}/ping', timeout=2)",
]
SECOND_NS = 1_000_000_000
ROUTE_TIMEOUT = 20.0
# After the route moved, the old container only finishes requests already sent to it.
DRAIN_SECONDS = 1.0
STOP_TIMEOUT = 10
LOG_TAIL = 10
LOG_CHARS = 1200


class StartFailed(EngineError):
    """A model container did not become healthy; the message carries its last log lines."""


def _generation(container: Any) -> int:
    try:
        return int((container.labels or {}).get(names.LABEL_GENERATION, "0"))
    except ValueError:
        return 0


def _health(container: Any) -> str | None:
    return ((container.attrs.get("State") or {}).get("Health") or {}).get("Status")


def _logs_tail(container: Any, lines: int = LOG_TAIL) -> str:
    try:
        text = container.logs(tail=lines).decode(errors="replace").strip()
    except Exception:  # the container may be gone already
        return ""
    joined = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return joined if len(joined) <= LOG_CHARS else "..." + joined[-LOG_CHARS:]


class DockerPlugin(BosunPluginBase):
    def __init__(self, plugin_config, private_config_file=None, pe_info=None, dry_run=False):
        super().__init__(plugin_config, private_config_file, pe_info, dry_run)
        self._plugin_config.update(self.read_private_config())
        self._config = DockerConfig.from_mapping(self._plugin_config)
        self._client: Any = None

    # ----- plumbing ------------------------------------------------------------------------
    @property
    def config(self) -> DockerConfig:
        return self._config

    def _engine(self) -> Any:
        if self._client is None:
            self._client = connect(self._config.docker_host)
        return self._client

    def _guarded(self, action: str, run: Callable[[], ActionStatusInfo]) -> ActionStatusInfo:
        """Run `action` (its work is `run`); an engine that stops answering midway becomes a
        clear status."""
        import docker.errors

        try:
            return run()
        except (EngineUnreachable, ConfigError, EngineError) as exc:
            return failing_status(action, str(exc))
        except docker.errors.APIError as exc:
            return failing_status(action, f"Docker engine error: {describe_api_error(exc)}")
        except Exception as exc:
            if is_connection_error(exc):
                return failing_status(action, unreachable_message(self._config.docker_host, exc))
            raise
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _model_containers(self, deployment_id: str | None = None) -> list[Any]:
        filters = {"label": names.label_filter(self._config.environment_id, names.ROLE_MODEL, deployment_id)}
        return self._engine().containers.list(all=True, filters=filters)

    # ----- observing -----------------------------------------------------------------------
    def _status_of(self, deployment_id: str, containers: list[Any]) -> ActionStatusInfo:
        url = self._config.prediction_url(deployment_id)
        if not containers:
            return ActionStatusInfo(ActionStatus.OK, msg="no container", state=DeploymentState.STOPPED)
        ordered = sorted(containers, key=_generation, reverse=True)
        serving = [c for c in ordered if c.status == "running" and _health(c) in ("healthy", None)]
        if serving:
            current = serving[0]
            model_id = (current.labels or {}).get(names.LABEL_MODEL)
            others = [c.name for c in ordered if c is not current]
            msg = f"container {current.name} serves model {model_id}"
            if others:
                msg += f"; also present: {', '.join(others)}"
            return ActionStatusInfo(
                ActionStatus.OK,
                msg=msg,
                state=DeploymentState.READY,
                data={ActionDataFields.PREDICTION_URL: url, ActionDataFields.CURRENT_MODEL_ID: model_id},
            )
        newest = ordered[0]
        model_id = (newest.labels or {}).get(names.LABEL_MODEL)
        data = {ActionDataFields.PREDICTION_URL: url, ActionDataFields.CURRENT_MODEL_ID: model_id}
        if newest.status == "running" and _health(newest) == "starting":
            return ActionStatusInfo(
                ActionStatus.OK, msg=f"container {newest.name} is starting", state=DeploymentState.LAUNCHING, data=data
            )
        state = newest.attrs.get("State") or {}
        if newest.status == "running":
            log = ((state.get("Health") or {}).get("Log") or [{}])[-1].get("Output", "").strip()
            why = f"container {newest.name} is unhealthy (health check: {log[-300:] or 'no output'})"
        elif newest.status == "restarting":
            why = f"container {newest.name} keeps restarting (last exit code {state.get('ExitCode')})"
        else:
            why = (
                f"container {newest.name} is {newest.status} (exit code {state.get('ExitCode')}"
                f"{', OOM-killed' if state.get('OOMKilled') else ''}); last log lines: {_logs_tail(newest) or 'none'}"
            )
        return ActionStatusInfo(ActionStatus.ERROR, msg=why, state=DeploymentState.ERROR, data=data)

    def _by_deployment(self) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = {}
        for container in self._model_containers():
            dep_id = (container.labels or {}).get(names.LABEL_DEPLOYMENT)
            if dep_id:
                grouped.setdefault(dep_id, []).append(container)
        return grouped

    # ----- bringing a model up ---------------------------------------------------------------
    def _serve_config(self, deployment_id: str, model_id: str) -> str:
        values: dict[str, Any] = {
            "package": names.MODEL_PACKAGE_PATH,
            "host": "0.0.0.0",
            "port": names.PPS_PORT,
            "deployment_id": deployment_id,
            "model_id": model_id,
            "log_level": "warning",
        }
        if self._config.monitoring:
            values["monitoring"] = infra.monitoring_channel(self._config)
        return json.dumps(values)

    def _healthcheck(self, image: Any) -> dict[str, Any]:
        check: dict[str, Any] = {
            "interval": SECOND_NS,
            "timeout": 3 * SECOND_NS,
            "retries": 3,
            "start_period": int(self._config.start_timeout * SECOND_NS),
        }
        if not ((image.attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test"):
            check["test"] = HEALTH_TEST
        return check

    def _run_model(self, deployment_id: str, model_id: str, image_ref: str, generation: int) -> Any:
        import docker.errors

        client = self._engine()
        name = names.container_name(self._config.container_prefix, deployment_id, model_id)
        labels = {
            **names.base_labels(self._config.environment_id, names.ROLE_MODEL),
            names.LABEL_DEPLOYMENT: deployment_id,
            names.LABEL_MODEL: model_id,
            names.LABEL_GENERATION: str(generation),
            **names.traefik_labels(
                self._config.environment_id, self._config.network, deployment_id, model_id, generation
            ),
        }
        try:
            return client.containers.run(
                image_ref,
                name=name,
                entrypoint=["python", "-c", SERVE_SCRIPT],
                command=[],
                environment={SERVE_CONFIG_ENV: self._serve_config(deployment_id, model_id)},
                labels=labels,
                network=self._config.network,
                healthcheck=self._healthcheck(client.images.get(image_ref)),
                restart_policy={"Name": "unless-stopped"},
                detach=True,
            )
        except docker.errors.APIError as exc:
            raise EngineError(f"starting container {name} from {image_ref} failed: {describe_api_error(exc)}") from None

    def _wait_healthy(self, container: Any) -> None:
        deadline = time.monotonic() + self._config.start_timeout
        while True:
            container.reload()
            health = _health(container)
            if container.status == "running" and health in ("healthy", None):
                return
            if container.status in ("exited", "dead") or health == "unhealthy":
                break
            if container.status == "restarting":
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        state = container.attrs.get("State") or {}
        restarts = int(container.attrs.get("RestartCount") or 0)
        if container.status in ("exited", "dead", "restarting") or restarts:
            why = f"exited with code {state.get('ExitCode')}"
            if restarts:
                why += f" (restarted {restarts} time(s))"
        elif health == "unhealthy":
            why = "failed its /ping health check"
        else:
            why = f"did not pass its /ping health check within {self._config.start_timeout:.0f} s ({START_TIMEOUT})"
        raise StartFailed(f"container {container.name} {why}; last log lines: {_logs_tail(container) or 'none'}")

    def _bring_up(self, di: DeploymentInfo, model_id: str) -> tuple[Any, dict[str, float]]:
        """A healthy, routed container for (deployment, model); other models' containers are
        left to the caller. Returns (container, timings)."""
        timings: dict[str, float] = {}
        artifact = self._check_artifact(di.model_artifact)
        client = self._engine()
        done = infra.ensure_all(client, self._config)
        if done:
            self._logger.info("event=infra_repaired environment=%s done=%r", self._config.environment_id, done)
        existing = infra.get_container(client, names.container_name(self._config.container_prefix, di.id, model_id))
        if existing is not None and existing.status == "running" and _health(existing) in ("healthy", "starting", None):
            container = existing
            self._wait_healthy(container)
        else:
            if existing is not None:
                infra.remove_container(existing)
            image = ensure_model_image(
                client, self._config.image_repository, self._config.pps_base_image, model_id, artifact
            )
            timings["image_seconds"] = round(image.seconds, 3)
            timings["image_built"] = float(image.built)
            generation = max([_generation(c) for c in self._model_containers(di.id)] + [_now_generation()]) + 1
            started = time.monotonic()
            container = self._run_model(di.id, model_id, image.reference, generation)
            try:
                self._wait_healthy(container)
            except StartFailed:
                infra.remove_container(container, stop_timeout=1)
                raise
            timings["healthy_seconds"] = round(time.monotonic() - started, 3)
        routed = time.monotonic()
        api = infra.traefik_api(self._config, infra.get_container(client, infra.proxy_name(self._config)))
        if not infra.wait_route(api, names.router_name(di.id, model_id), True, ROUTE_TIMEOUT):
            # Not routed yet, maybe later: remove it rather than let the route move unannounced.
            infra.remove_container(container, stop_timeout=1)
            raise EngineError(
                f"container {container.name} is healthy but the proxy did not pick up its route within "
                f"{ROUTE_TIMEOUT:.0f} s; check the proxy container {infra.proxy_name(self._config)}"
            )
        timings["route_seconds"] = round(time.monotonic() - routed, 3)
        return container, timings

    @staticmethod
    def _check_artifact(artifact: str | None) -> Path:
        if not artifact:
            raise ConfigError("deploymentInfo.modelArtifact", "is missing", "give the path of the model package")
        path = Path(artifact)
        if not path.is_file():
            raise ConfigError("deploymentInfo.modelArtifact", f"{path} is not a readable file")
        return path

    def _retire(self, keep: Any, containers: list[Any]) -> list[str]:
        """Remove every container of the deployment but `keep` (after the route moved)."""
        removed = []
        for container in containers:
            if container.id == keep.id:
                continue
            infra.remove_container(container, stop_timeout=STOP_TIMEOUT)
            removed.append(container.name)
        return removed

    def _serving(
        self, di: DeploymentInfo, container: Any, model_id: str, timings: dict[str, float], *, event: str, retired: str
    ) -> ActionStatusInfo:
        """`container` serves the deployment now: remove its other containers, log `event` and
        report the deployment ready. `retired` says what became of the removed ones ({} is
        their names)."""
        removed = self._retire(container, self._model_containers(di.id))
        msg = f"container {container.name} serves model {model_id}"
        if removed:
            msg += "; " + retired.format(", ".join(removed))
        self._logger.info("event=%s deployment=%s model=%s timings=%s", event, di.id, model_id, timings)
        return ActionStatusInfo(
            ActionStatus.OK,
            msg=msg,
            state=DeploymentState.READY,
            data={
                ActionDataFields.PREDICTION_URL: self._config.prediction_url(di.id),
                ActionDataFields.CURRENT_MODEL_ID: model_id,
                **({"timings": timings} if timings else {}),
            },
        )

    # ----- actions ---------------------------------------------------------------------------
    def plugin_start(self) -> ActionStatusInfo:
        def run() -> ActionStatusInfo:
            client = self._engine()
            if self._dry_run:
                return ActionStatusInfo(ActionStatus.OK, msg="dry run: would ensure the network and the proxy")
            done = infra.ensure_all(client, self._config)
            what = "; ".join(done) if done else "network and proxy already up"
            return ActionStatusInfo(
                ActionStatus.OK,
                msg=f"{what}; predictions at {self._config.outfacing_url_prefix}/deployments/<id>/predictions",
                data={ActionDataFields.DASHBOARD_URL: self._dashboard_url()},
            )

        return self._guarded(BosunPluginActions.PLUGIN_START, run)

    def _dashboard_url(self) -> str | None:
        from deckhand.plugins.docker.config import TRAEFIK_API_PORT

        port = self._config.traefik_ports.get(TRAEFIK_API_PORT)
        return f"http://localhost:{port}/dashboard/" if port else None

    def plugin_stop(self) -> ActionStatusInfo:
        def run() -> ActionStatusInfo:
            running = self._by_deployment()
            if running:
                return ActionStatusInfo(
                    ActionStatus.OK,
                    msg=(
                        f"{len(running)} deployment(s) still have containers ({', '.join(sorted(running))}); the proxy "
                        "stays up so they keep serving and a restarted agent adopts them"
                    ),
                )
            if self._dry_run:
                return ActionStatusInfo(ActionStatus.OK, msg="dry run: would remove the proxy and the network")
            client = self._engine()
            removed = []
            for container in infra.shared_containers(client, self._config):
                infra.remove_container(container, stop_timeout=5)
                removed.append(container.name)
            network = infra.remove_network_if_ours(client, self._config)
            if network:
                removed.append(f"network {network}")
            return ActionStatusInfo(ActionStatus.OK, msg=f"removed {', '.join(removed) or 'nothing (none left)'}")

        return self._guarded(BosunPluginActions.PLUGIN_STOP, run)

    def deployment_list(self) -> ActionStatusInfo:
        def run() -> ActionStatusInfo:
            grouped = self._by_deployment()
            data = {dep: self._status_of(dep, containers).to_dict() for dep, containers in sorted(grouped.items())}
            return ActionStatusInfo(ActionStatus.OK, msg=f"{len(data)} deployment(s)", data=data)

        return self._guarded(BosunPluginActions.DEPLOYMENT_LIST, run)

    def deployment_status(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        return self._guarded(
            BosunPluginActions.DEPLOYMENT_STATUS,
            lambda: self._status_of(deployment_info.id, self._model_containers(deployment_info.id)),
        )

    def deployment_start(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        di = deployment_info

        def run() -> ActionStatusInfo:
            di.require_model()
            model_id = str(di.current_model_id)
            if self._dry_run:
                return ActionStatusInfo(
                    ActionStatus.OK,
                    msg=f"dry run: would run model {model_id} for deployment {di.id}",
                    state=DeploymentState.STOPPED,
                )
            container, timings = self._bring_up(di, model_id)
            return self._serving(di, container, model_id, timings, event="deployment_started", retired="removed {}")

        return self._guarded(BosunPluginActions.DEPLOYMENT_START, run)

    def deployment_replace_model(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        di = deployment_info

        import docker.errors

        def run() -> ActionStatusInfo:
            if not di.current_model_id:
                raise ConfigError("deploymentInfo.newModelId", "is missing", "give the id of the model to switch to")
            model_id = str(di.current_model_id)
            before = self._status_of(di.id, self._model_containers(di.id))
            if self._dry_run:
                return ActionStatusInfo(
                    ActionStatus.OK,
                    msg=f"dry run: would replace the model of {di.id} with {model_id}",
                    state=before.state,
                )
            try:
                container, timings = self._bring_up(di, model_id)
            except Exception as exc:
                expected = isinstance(exc, PluginError | docker.errors.APIError) or is_connection_error(exc)
                if expected and before.state == DeploymentState.READY:
                    why = unreachable_message(self._config.docker_host, exc) if is_connection_error(exc) else str(exc)
                    # The old container keeps serving: its route was never touched.
                    return ActionStatusInfo(
                        ActionStatus.ERROR,
                        msg=f"model not replaced, {model_id} cannot serve: {why}; the old model keeps serving",
                        state=DeploymentState.READY,
                        data={**(before.data or {}), ActionDataFields.OLD_MODEL_IN_USE: True},
                    )
                raise
            time.sleep(DRAIN_SECONDS)
            return self._serving(
                di, container, model_id, timings, event="model_replaced", retired="retired {} after the route moved"
            )

        return self._guarded(BosunPluginActions.DEPLOYMENT_REPLACE_MODEL, run)

    def deployment_stop(self, deployment_id: str) -> ActionStatusInfo:
        dep_id = str(deployment_id)

        def run() -> ActionStatusInfo:
            containers = self._model_containers(dep_id)
            if self._dry_run:
                return ActionStatusInfo(
                    ActionStatus.OK,
                    msg=f"dry run: would remove {', '.join(c.name for c in containers) or 'nothing'}",
                    state=DeploymentState.STOPPED,
                )
            for container in containers:
                infra.remove_container(container, stop_timeout=STOP_TIMEOUT)
            msg = f"removed {', '.join(c.name for c in containers)}" if containers else "no container was running"
            return ActionStatusInfo(ActionStatus.OK, msg=msg, state=DeploymentState.STOPPED)

        return self._guarded(BosunPluginActions.DEPLOYMENT_STOP, run)

    def pe_status(self) -> ActionStatusInfo:
        def run() -> ActionStatusInfo:
            client = self._engine()
            # Repair what is missing (the proxy died, a port was freed): the agent calls
            # plugin_start once, and the environment must converge without a restart.
            problems: list[str] = []
            try:
                done = [] if self._dry_run else infra.ensure_all(client, self._config)
            except EngineError as exc:
                done, problems = [], [str(exc)]
            grouped = self._by_deployment()
            statuses: dict[str, Any] = {}
            for di in self._pe_info.deployments if self._pe_info else []:
                statuses[di.id] = self._status_of(di.id, grouped.get(di.id, [])).to_dict()
            data = {ActionDataFields.DEPLOYMENTS_STATUS: statuses}
            if problems:
                return ActionStatusInfo(ActionStatus.ERROR, msg="; ".join(problems), data=data)
            not_ready = sorted(d for d, s in statuses.items() if s["state"] != DeploymentState.READY)
            repaired = f" (repaired: {'; '.join(done)})" if done else ""
            warnings = [f"{len(not_ready)} of {len(statuses)} deployment(s) not ready: {', '.join(not_ready)}"]
            warnings = warnings if not_ready else []
            for container in infra.shared_containers(client, self._config):
                health = _health(container)
                if container.status != "running" or health == "unhealthy":
                    warnings.append(f"{container.name} is {container.status}{f' ({health})' if health else ''}")
            if warnings:
                return ActionStatusInfo(ActionStatus.WARN, msg="; ".join(warnings) + repaired, data=data)
            return ActionStatusInfo(
                ActionStatus.OK,
                msg=f"engine {self._config.docker_host} and proxy up; {len(statuses)} deployment(s) ready{repaired}",
                data=data,
            )

        return self._guarded(BosunPluginActions.PE_STATUS, run)


def _now_generation() -> int:
    """Route priority: tenths of a second since 2023-11-14, so a newer container wins."""
    return int((time.time() - 1_700_000_000) * 10)

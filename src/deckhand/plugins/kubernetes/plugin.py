"""The Kubernetes plugin: every answer comes from the cluster's real state.

deployment_start / deployment_replace_model build the model image if the registry lacks
it (builder.py), server-side apply the deployment's objects (manifests.py) and wait for
the rollout; the old model keeps serving until new pods are ready (maxUnavailable 0),
and a stuck rollout is reported with oldModelInUse. Pod failures (image pulls, crash
loops, unschedulable pods) become readable messages, never "ready".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo
from deckhand.plugin.base import BosunPluginBase
from deckhand.plugin.constants import DeploymentState
from deckhand.plugin.deployment_info import DeploymentInfo
from deckhand.plugin.errors import PluginError
from deckhand.plugins.kubernetes import builder, manifests
from deckhand.plugins.kubernetes.config import KubernetesConfig
from deckhand.plugins.kubernetes.kube import Kube, KubeError
from deckhand.plugins.kubernetes.manifests import (
    ANNOTATION_DEPLOYMENT,
    ANNOTATION_MODEL,
    LABEL_COMPONENT,
    LABEL_ENVIRONMENT,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    label_value,
    object_name,
)

# Waiting reasons that mean the pod will not become ready by itself.
FATAL_WAITING = {
    "ErrImagePull": "cannot pull the image",
    "ImagePullBackOff": "cannot pull the image",
    "InvalidImageName": "the image name is invalid",
    "CrashLoopBackOff": "keeps crashing",
    "CreateContainerConfigError": "cannot be configured",
    "CreateContainerError": "cannot be created",
    "RunContainerError": "cannot be started",
}
OWNED_KINDS = ("Ingress", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Deployment")


@dataclass
class Observation:
    """What the cluster says about one deployment."""

    exists: bool
    desired_model: str | None = None
    serving_model: str | None = None  # model of the ready pods (old one during a rollout)
    complete: bool = False
    ready_pods: int = 0
    wanted: int = 0
    problems: list[str] = field(default_factory=list)
    stuck: bool = False  # progress deadline exceeded
    old_ready: int = 0

    @property
    def fatal(self) -> bool:
        return bool(self.problems) or self.stuck

    def summary(self) -> str:
        if not self.exists:
            return "no Deployment"
        text = f"{self.ready_pods}/{self.wanted} pod(s) of model {self.desired_model} ready"
        if self.old_ready:
            text += f", {self.old_ready} pod(s) of model {self.serving_model} still serving"
        if self.stuck:
            text += "; rollout exceeded its progress deadline"
        if self.problems:
            text += "; " + "; ".join(self.problems)
        return text


class KubernetesPlugin(BosunPluginBase):
    def __init__(self, plugin_config, private_config_file=None, pe_info=None, dry_run=False):
        super().__init__(plugin_config, private_config_file, pe_info, dry_run)
        self._plugin_config.update(self.read_private_config())
        self._config = KubernetesConfig.from_mapping(self._plugin_config)
        self._kube: Kube | None = None

    # ----- plumbing ------------------------------------------------------------------------
    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube.connect(self._config)
        return self._kube

    def _url_data(self, deployment_id: str) -> dict[str, Any]:
        url = self._config.prediction_url(deployment_id)
        return {ActionDataFields.PREDICTION_URL: url} if url else {}

    def _selector(self) -> str:
        parts = [f"{LABEL_MANAGED_BY}={MANAGED_BY}", f"{LABEL_COMPONENT}=prediction-server"]
        if self._config.environment_id:
            parts.append(f"{LABEL_ENVIRONMENT}={label_value(self._config.environment_id)}")
        return ",".join(parts)

    # ----- observing -----------------------------------------------------------------------
    def observe(self, deployment_id: str) -> Observation:
        dep = self.kube.read("Deployment", object_name(deployment_id))
        if dep is None:
            return Observation(exists=False)
        return self._observe(dep, deployment_id)

    def _observe(self, dep: Any, deployment_id: str) -> Observation:
        annotations = dep.metadata.annotations or {}
        desired = annotations.get(ANNOTATION_MODEL)
        st = dep.status
        wanted = dep.spec.replicas if dep.spec.replicas is not None else 1
        updated = (st.updated_replicas or 0) if st else 0
        total = (st.replicas or 0) if st else 0
        available = (st.available_replicas or 0) if st else 0
        generation_seen = st is not None and (st.observed_generation or 0) >= (dep.metadata.generation or 0)
        obs = Observation(exists=True, desired_model=desired, wanted=wanted)
        obs.complete = generation_seen and updated >= wanted and total == updated and available >= wanted
        for cond in (st.conditions or []) if st else []:
            if cond.type == "Progressing" and cond.status == "False" and cond.reason == "ProgressDeadlineExceeded":
                obs.stuck = True
        old_models: list[str] = []
        for pod in self.kube.pods(",".join(f"{k}={v}" for k, v in manifests.selector_labels(deployment_id).items())):
            if pod.metadata.deletion_timestamp is not None:
                continue
            pod_model = (pod.metadata.annotations or {}).get(ANNOTATION_MODEL)
            ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
            if pod_model == desired:
                obs.ready_pods += int(ready)
                obs.problems += self._pod_problems(pod)
            elif ready:
                obs.old_ready += 1
                if pod_model:
                    old_models.append(pod_model)
        if obs.complete and obs.ready_pods >= wanted and not obs.old_ready:
            obs.problems = []  # earlier restarts of now-ready pods are history
            obs.serving_model = desired
        elif obs.old_ready:
            obs.serving_model = old_models[0] if old_models else None
        obs.problems = sorted(set(obs.problems))
        return obs

    def _pod_problems(self, pod: Any) -> list[str]:
        out = []
        name = pod.metadata.name
        for st in [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]:
            waiting = st.state.waiting if st.state else None
            if waiting and waiting.reason in FATAL_WAITING:
                text = f"pod {name}: container {st.name} {FATAL_WAITING[waiting.reason]} ({waiting.reason})"
                if waiting.reason == "CrashLoopBackOff":
                    last = st.last_state.terminated if st.last_state else None
                    if last is not None:
                        text += f", restarted {st.restart_count} time(s), last exit code {last.exit_code}"
                    tail = self._previous_log(name, st.name)
                    if tail:
                        text += f"; last log line: {tail}"
                elif waiting.message:
                    text += f": {waiting.message[:300]}"
                out.append(text)
        for cond in pod.status.conditions or []:
            if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                out.append(f"pod {name} cannot be scheduled: {cond.message}")
        return out

    def _previous_log(self, pod: str, container: str) -> str:
        try:
            text = self.kube.core.read_namespaced_pod_log(
                pod, self.kube.namespace, container=container, previous=True, tail_lines=5
            )
        except Exception:
            return ""
        lines = [line for line in (text or "").splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""

    def _status_of(self, deployment_id: str, obs: Observation) -> ActionStatusInfo:
        data = self._url_data(deployment_id)
        if not obs.exists:
            return ActionStatusInfo(ActionStatus.OK, msg="not deployed", state=DeploymentState.STOPPED)
        if obs.complete and obs.serving_model == obs.desired_model:
            data[ActionDataFields.CURRENT_MODEL_ID] = obs.desired_model
            return ActionStatusInfo(
                ActionStatus.OK,
                msg=f"model {obs.desired_model}: {obs.summary()}",
                state=DeploymentState.READY,
                data=data,
            )
        if obs.old_ready:  # a replacement in progress or stuck: the old model serves
            data[ActionDataFields.CURRENT_MODEL_ID] = obs.serving_model
            data[ActionDataFields.OLD_MODEL_IN_USE] = True
            if obs.fatal:
                return ActionStatusInfo(
                    ActionStatus.ERROR,
                    msg=f"replacement by model {obs.desired_model} is stuck, old model {obs.serving_model} "
                    f"still serving: {obs.summary()}",
                    state=DeploymentState.READY,
                    data=data,
                )
            return ActionStatusInfo(
                ActionStatus.WARN, msg=f"rolling out: {obs.summary()}", state=DeploymentState.REPLACING_MODEL, data=data
            )
        if obs.fatal:
            return ActionStatusInfo(ActionStatus.ERROR, msg=obs.summary(), state=DeploymentState.ERROR, data=data)
        return ActionStatusInfo(
            ActionStatus.WARN, msg=f"launching: {obs.summary()}", state=DeploymentState.LAUNCHING, data=data
        )

    def _wait_rollout(self, deployment_id: str, timeout: float) -> tuple[ActionStatusInfo, Observation]:
        deadline = time.monotonic() + timeout
        fatal_polls = 0
        while True:
            obs = self.observe(deployment_id)
            status = self._status_of(deployment_id, obs)
            if status.state == DeploymentState.READY and status.status == ActionStatus.OK:
                return status, obs
            fatal_polls = fatal_polls + 1 if obs.fatal else 0
            # image pull errors flap ErrImagePull <-> ImagePullBackOff: a few polls, then give up
            if fatal_polls >= 3:
                return status, obs
            if time.monotonic() > deadline:
                status.status = ActionStatus.ERROR
                status.msg = f"not ready within {timeout:.0f} s: {obs.summary()}"
                if status.state in (DeploymentState.LAUNCHING, None):
                    status.state = DeploymentState.ERROR
                if status.state == DeploymentState.REPLACING_MODEL:
                    status.state = DeploymentState.READY
                return status, obs
            time.sleep(1.0)

    # ----- actions -------------------------------------------------------------------------
    def plugin_start(self) -> ActionStatusInfo:
        try:
            deployments = self.kube.list_objects("Deployment", self._selector())
        except KubeError as exc:
            return ActionStatusInfo(ActionStatus.ERROR, msg=f"cannot use the cluster: {exc}")
        host = self.kube.host
        warnings = [
            f"{key} is not set"
            for key, value in (
                ("ppsBaseImage", self._config.pps_base_image),
                ("generatedImageRepo", self._config.generated_image_repo),
                ("outfacingPredictionURLPrefix", self._config.url_prefix),
            )
            if not value
        ]
        msg = f"connected to {host}, namespace {self.kube.namespace}; {len(deployments)} deployment(s) found"
        if warnings:
            return ActionStatusInfo(ActionStatus.WARN, msg=msg + "; " + "; ".join(warnings))
        return ActionStatusInfo(ActionStatus.OK, msg=msg)

    def plugin_stop(self) -> ActionStatusInfo:
        if self._kube is not None:
            self._kube.api_client.close()
            self._kube = None
        return ActionStatusInfo(ActionStatus.OK, msg="client closed")

    def deployment_list(self) -> ActionStatusInfo:
        data: dict[str, Any] = {}
        for dep in self.kube.list_objects("Deployment", self._selector()):
            dep_id = (dep.metadata.annotations or {}).get(ANNOTATION_DEPLOYMENT)
            if dep_id:
                data[dep_id] = self._status_of(dep_id, self._observe(dep, dep_id)).to_dict()
        return ActionStatusInfo(ActionStatus.OK, msg=f"{len(data)} deployment(s)", data=data)

    def deployment_start(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        return self._roll(deployment_info, replacing=False)

    def deployment_replace_model(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        return self._roll(deployment_info, replacing=True)

    def _roll(self, di: DeploymentInfo, *, replacing: bool) -> ActionStatusInfo:
        model_id = di.current_model_id
        if not model_id:
            raise PluginError("deploymentInfo.modelId is missing: the model to deploy")
        cfg = self._config
        image = cfg.model_image(model_id)
        objects = manifests.all_objects(cfg, self.kube.namespace, di.id, model_id, image, di.kv_config)
        if self._dry_run:
            kinds = ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objects)
            return ActionStatusInfo(
                ActionStatus.OK,
                msg=f"dry run: would build {image} if missing and apply {kinds}",
                state=DeploymentState.STOPPED,
                data=self._url_data(di.id),
            )
        before = self.observe(di.id) if replacing else None
        try:
            build = builder.ensure_image(
                self.kube, cfg, model_id, package_url=cfg.package_url(model_id), log=self._logger
            )
        except builder.BuildError as exc:
            return self._failed_before_rollout(di.id, str(exc), before)
        self._logger.info("event=model_image image=%s built=%s seconds=%.1f", image, build.built, build.seconds)
        for obj in objects:
            self.kube.apply(obj)
        self._remove_disabled(di.id, {o["kind"] for o in objects})
        status, _obs = self._wait_rollout(di.id, cfg.ready_timeout)
        prefix = build.message + "; " if build.built else ""
        status.msg = prefix + (status.msg or "")
        return status

    def _failed_before_rollout(self, deployment_id: str, message: str, before: Observation | None) -> ActionStatusInfo:
        if before is not None and before.exists and before.serving_model:
            data = self._url_data(deployment_id)
            data[ActionDataFields.CURRENT_MODEL_ID] = before.serving_model
            data[ActionDataFields.OLD_MODEL_IN_USE] = True
            return ActionStatusInfo(
                ActionStatus.ERROR,
                msg=f"model not replaced, old model {before.serving_model} still serving: {message}",
                state=DeploymentState.READY,
                data=data,
            )
        return ActionStatusInfo(ActionStatus.ERROR, msg=message, state=DeploymentState.ERROR)

    def _remove_disabled(self, deployment_id: str, applied: set[str]) -> None:
        """An HPA or PDB switched off in the config since the last apply goes away."""
        for kind in ("Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
            if kind not in applied:
                self.kube.delete(kind, object_name(deployment_id))

    def deployment_stop(self, deployment_id: str) -> ActionStatusInfo:
        deployment_id = str(deployment_id)
        name = object_name(deployment_id)
        if self._dry_run:
            return ActionStatusInfo(ActionStatus.OK, msg=f"dry run: would delete {name}", state=DeploymentState.STOPPED)
        removed = [kind for kind in OWNED_KINDS if self.kube.delete(kind, name, foreground=kind == "Deployment")]
        selector = ",".join(f"{k}={v}" for k, v in manifests.selector_labels(deployment_id).items())
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            left = [p.metadata.name for p in self.kube.pods(selector)]
            if not left and self.kube.read("Deployment", name) is None:
                what = ", ".join(removed) if removed else "nothing (already gone)"
                return ActionStatusInfo(ActionStatus.OK, msg=f"removed {what} of {name}", state=DeploymentState.STOPPED)
            time.sleep(1.0)
        return ActionStatusInfo(
            ActionStatus.WARN,
            msg=f"deleted the objects of {name}, but pods are still terminating: {', '.join(left)}",
            state=DeploymentState.SHUTTING_DOWN,
        )

    def deployment_status(self, deployment_info: DeploymentInfo) -> ActionStatusInfo:
        return self._status_of(deployment_info.id, self.observe(deployment_info.id))

    def pe_status(self) -> ActionStatusInfo:
        try:
            found = {
                (d.metadata.annotations or {}).get(ANNOTATION_DEPLOYMENT): d
                for d in self.kube.list_objects("Deployment", self._selector())
            }
        except KubeError as exc:
            return ActionStatusInfo(ActionStatus.ERROR, msg=f"cluster not usable: {exc}")
        statuses: dict[str, Any] = {}
        for di in self._pe_info.deployments if self._pe_info else []:
            dep = found.get(di.id)
            obs = self._observe(dep, di.id) if dep is not None else Observation(exists=False)
            statuses[di.id] = self._status_of(di.id, obs).to_dict()
        not_ready = sorted(d for d, s in statuses.items() if s["state"] != DeploymentState.READY)
        data = {ActionDataFields.DEPLOYMENTS_STATUS: statuses}
        where = f"namespace {self.kube.namespace}"
        if not_ready:
            return ActionStatusInfo(
                ActionStatus.WARN,
                msg=f"{where}: {len(not_ready)} of {len(statuses)} deployment(s) not ready: {', '.join(not_ready)}",
                data=data,
            )
        return ActionStatusInfo(ActionStatus.OK, msg=f"{where}: {len(statuses)} deployment(s) ready", data=data)

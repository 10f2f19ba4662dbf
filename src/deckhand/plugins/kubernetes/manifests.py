"""The Kubernetes objects of one deployment, as plain manifests (pure functions).

Deployment (probes on /ping, optional tracking-agent sidecar sharing a spool volume),
Service, Ingress (the deployment's public routes only, under outfacingPredictionURLPrefix),
optional HPA and PDB. Every object carries the deckhand labels, so a deployment is found, listed
and removed by its id alone.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from deckhand.plugins import public_routes
from deckhand.plugins.kubernetes.config import KubernetesConfig

LABEL_DEPLOYMENT = "deckhand.io/deployment-id"
LABEL_MODEL = "deckhand.io/model-id"
LABEL_ENVIRONMENT = "deckhand.io/environment-id"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
MANAGED_BY = "deckhand"
ANNOTATION_DEPLOYMENT = "deckhand.io/deployment-id"
ANNOTATION_MODEL = "deckhand.io/model-id"
ANNOTATION_PREDICTION_URL = "deckhand.io/prediction-url"
FIELD_MANAGER = "deckhand"

CONTAINER = "prediction-server"
SIDECAR = "tracking-agent"
PORT = 8080
MODELS_DIR = "/opt/deckhand/models"
PACKAGE_PATH = "/opt/deckhand/package/model.dhpkg"
SPOOL_DIR = "/spool"

# The model image holds one package; the prediction server (multi-model mode) serves it
# under the deployment's id, so /deployments/<id>/predictions reaches it through the Ingress.
START_SCRIPT = f"""set -eu
deckhand package inspect {PACKAGE_PATH} >/dev/null
d="{MODELS_DIR}/$DECKHAND_DEPLOYMENT_ID"
mkdir -p "$d"
printf 'deployment_id: "%s"\\nmodel_id: "%s"\\nmodel_artifact: {PACKAGE_PATH}\\n' \\
  "$DECKHAND_DEPLOYMENT_ID" "$DECKHAND_MODEL_ID" > "$d/.config.yml"
mv "$d/.config.yml" "$d/config.yml"
exec deckhand serve --models-dir {MODELS_DIR} --host 0.0.0.0 --port "$DECKHAND_PORT" \\
  --workers "${{DECKHAND_WORKERS:-1}}"
"""
# One worker per pod unless DECKHAND_WORKERS says otherwise: a pod scales out (replicas,
# HPA), and inside a container os.cpu_count() is the node's CPUs, not the pod's limit.

# A pod being replaced keeps serving this long after it is told to stop: the ingress
# controller and kube-proxy drop its endpoint on their own watch, a moment after the pod
# is marked terminating; a server that stopped at once answered what they still sent it
# with 502s and hung connections (seen through Traefik on every rollout).
DRAIN_SECONDS = 5

_NAME_BAD = re.compile(r"[^a-z0-9-]+")
_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def object_name(deployment_id: str, prefix: str = "dh-") -> str:
    """A DNS-1123 label for the deployment's objects (stable, at most 63 characters)."""
    clean = _NAME_BAD.sub("-", deployment_id.lower()).strip("-")
    name = f"{prefix}{clean}"
    if clean != deployment_id or len(name) > 52:  # keep names unique when the id had to change
        digest = hashlib.sha256(deployment_id.encode()).hexdigest()[:8]
        name = f"{name[:52].rstrip('-')}-{digest}"
    return name


def label_value(value: str) -> str:
    """A valid label value (63 characters, alphanumeric at both ends); ids are kept verbatim
    in annotations when they had to change."""
    clean = _LABEL_BAD.sub("-", value).strip("-._")
    if clean != value or len(clean) > 63:
        digest = hashlib.sha256(value.encode()).hexdigest()[:8]
        clean = f"{clean[:54].rstrip('-._')}-{digest}".lstrip("-")
    return clean


def selector_labels(deployment_id: str) -> dict[str, str]:
    return {LABEL_DEPLOYMENT: label_value(deployment_id)}


def labels(cfg: KubernetesConfig, deployment_id: str, model_id: str | None = None) -> dict[str, str]:
    out = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_NAME: "deckhand-model",
        LABEL_COMPONENT: "prediction-server",
        **selector_labels(deployment_id),
    }
    if model_id:
        out[LABEL_MODEL] = label_value(model_id)
    if cfg.environment_id:
        out[LABEL_ENVIRONMENT] = label_value(cfg.environment_id)
    return out


def _meta(cfg: KubernetesConfig, namespace: str, deployment_id: str, model_id: str | None) -> dict[str, Any]:
    annotations = {ANNOTATION_DEPLOYMENT: deployment_id}
    if model_id:
        annotations[ANNOTATION_MODEL] = model_id
    url = cfg.prediction_url(deployment_id)
    if url:
        annotations[ANNOTATION_PREDICTION_URL] = url
    return {
        "name": object_name(deployment_id),
        "namespace": namespace,
        "labels": labels(cfg, deployment_id, model_id),
        "annotations": annotations,
    }


def sidecar_enabled(cfg: KubernetesConfig) -> bool:
    return bool(cfg.monitoring and cfg.agent_image)


def add_pull_secrets_and_placement(pod_spec: dict[str, Any], cfg: KubernetesConfig) -> None:
    """Image pull secrets, node selector and tolerations: what every pod deckhand creates
    (model servers and image builds alike) takes from the plugin config."""
    if cfg.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in cfg.image_pull_secrets]
    if cfg.node_selector:
        pod_spec["nodeSelector"] = cfg.node_selector
    if cfg.tolerations:
        pod_spec["tolerations"] = cfg.tolerations


def deployment(
    cfg: KubernetesConfig,
    namespace: str,
    deployment_id: str,
    model_id: str,
    image: str,
    kv: dict[str, Any] | None = None,
) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/ping", "port": "http"}, "timeoutSeconds": 2}
    env = [
        {"name": "DECKHAND_DEPLOYMENT_ID", "value": deployment_id},
        {"name": "DECKHAND_MODEL_ID", "value": model_id},
        {"name": "DECKHAND_PORT", "value": str(PORT)},
    ]
    mounts: list[dict[str, Any]] = [{"name": "models", "mountPath": MODELS_DIR}]
    volumes: list[dict[str, Any]] = [{"name": "models", "emptyDir": {}}]
    if sidecar_enabled(cfg):
        env.append({"name": "DECKHAND_MONITORING", "value": f"spool:{SPOOL_DIR}"})
        mounts.append({"name": "spool", "mountPath": SPOOL_DIR})
        volumes.append({"name": "spool", "emptyDir": {}})
    env += cfg.extra_env
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", START_SCRIPT],
        "env": env,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "startupProbe": {**probe, "periodSeconds": 1, "failureThreshold": 180},
        "readinessProbe": {**probe, "periodSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(DRAIN_SECONDS)]}}},
        "volumeMounts": mounts + cfg.extra_volume_mounts,
    }
    resources = _resources_from_kv(cfg.resources, kv or {})
    if resources:
        container["resources"] = resources
    if cfg.security_context:
        container["securityContext"] = cfg.security_context
    containers = [container]
    if sidecar_enabled(cfg):
        sidecar: dict[str, Any] = {
            "name": SIDECAR,
            "image": cfg.agent_image,
            "imagePullPolicy": "IfNotPresent",
            "args": list(cfg.tracking_agent_args),
            "env": [
                {"name": "DECKHAND_MONITORING", "value": f"spool:{SPOOL_DIR}"},
                {"name": "DECKHAND_DEPLOYMENT_ID", "value": deployment_id},
                *([{"name": "DECKHAND_URL", "value": cfg.mlops_url}] if cfg.mlops_url else []),
                *(
                    [
                        {
                            "name": "DECKHAND_TOKEN",
                            "valueFrom": {
                                "secretKeyRef": {
                                    "name": cfg.model_package_token_secret,
                                    "key": cfg.model_package_token_secret_key,
                                }
                            },
                        }
                    ]
                    if cfg.model_package_token_secret
                    else []
                ),
            ],
            "volumeMounts": [{"name": "spool", "mountPath": SPOOL_DIR}],
        }
        if cfg.security_context:
            sidecar["securityContext"] = cfg.security_context
        containers.append(sidecar)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 15,
        "containers": containers,
        "volumes": volumes + cfg.extra_volumes,
    }
    add_pull_secrets_and_placement(pod_spec, cfg)
    if cfg.affinity:
        pod_spec["affinity"] = cfg.affinity
    if cfg.pod_security_context:
        pod_spec["securityContext"] = cfg.pod_security_context
    meta = _meta(cfg, namespace, deployment_id, model_id)
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 2,
        "progressDeadlineSeconds": cfg.progress_deadline,
        # the old model keeps serving until a new pod is ready
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "selector": {"matchLabels": selector_labels(deployment_id)},
        "template": {
            "metadata": {"labels": meta["labels"], "annotations": {ANNOTATION_MODEL: model_id}},
            "spec": pod_spec,
        },
    }
    if cfg.hpa is None:  # with an HPA the replica count is the HPA's field, not ours
        spec["replicas"] = cfg.replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def _resources_from_kv(base: dict[str, Any], kv: dict[str, Any]) -> dict[str, Any]:
    """Per-deployment key values `cpu`/`memory` (bosun's documentation: keyValueConfig sets container size)."""
    out = {k: dict(v) for k, v in base.items() if isinstance(v, dict)}
    for key in ("cpu", "memory"):
        value = kv.get(key)
        if value not in (None, ""):
            out.setdefault("requests", {})[key] = str(value)
            out.setdefault("limits", {})
            if key == "memory":
                out["limits"][key] = str(value)
    return {k: v for k, v in out.items() if v}


def service(cfg: KubernetesConfig, namespace: str, deployment_id: str, model_id: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(cfg, namespace, deployment_id, model_id),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(deployment_id),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def ingress_paths(deployment_id: str) -> list[str]:
    """The deployment's public paths (public_routes), each an Exact Ingress path: nothing else
    under `/deployments/<id>` is routed. An Ingress cannot match on the HTTP method, so
    `POST`/`DELETE /deployments/<id>` (upload, delete) still reach the server through the
    `GET /deployments/<id>` path; the server refuses them on its public listener (model
    changes go through the agent)."""
    return public_routes.public_paths(deployment_id)


def ingress(cfg: KubernetesConfig, namespace: str, deployment_id: str, model_id: str | None) -> dict[str, Any]:
    meta = _meta(cfg, namespace, deployment_id, model_id)
    if cfg.ingress_annotations:
        meta["annotations"] = {**cfg.ingress_annotations, **meta["annotations"]}
    paths = [
        {"path": path, "pathType": "Exact", "backend": {"service": {"name": meta["name"], "port": {"name": "http"}}}}
        for path in ingress_paths(deployment_id)
    ]
    rule: dict[str, Any] = {"http": {"paths": paths}}
    if cfg.ingress_host:
        rule["host"] = cfg.ingress_host
    spec: dict[str, Any] = {"rules": [rule]}
    if cfg.ingress_class:
        spec["ingressClassName"] = cfg.ingress_class
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def hpa(cfg: KubernetesConfig, namespace: str, deployment_id: str, model_id: str | None) -> dict[str, Any] | None:
    if cfg.hpa is None:
        return None
    meta = _meta(cfg, namespace, deployment_id, model_id)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"]},
            "minReplicas": cfg.hpa.min_replicas,
            "maxReplicas": cfg.hpa.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cfg.hpa.target_cpu},
                    },
                }
            ],
        },
    }


def pdb(cfg: KubernetesConfig, namespace: str, deployment_id: str, model_id: str | None) -> dict[str, Any] | None:
    if cfg.pdb_min_available is None:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(cfg, namespace, deployment_id, model_id),
        "spec": {"minAvailable": cfg.pdb_min_available, "selector": {"matchLabels": selector_labels(deployment_id)}},
    }


def all_objects(
    cfg: KubernetesConfig,
    namespace: str,
    deployment_id: str,
    model_id: str,
    image: str,
    kv: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """What deployment_start applies, in order (Deployment first: its pods take longest)."""
    objects = [
        deployment(cfg, namespace, deployment_id, model_id, image, kv),
        service(cfg, namespace, deployment_id, model_id),
    ]
    if cfg.url_prefix or cfg.ingress_class:
        objects.append(ingress(cfg, namespace, deployment_id, model_id))
    for optional in (hpa(cfg, namespace, deployment_id, model_id), pdb(cfg, namespace, deployment_id, model_id)):
        if optional is not None:
            objects.append(optional)
    return objects

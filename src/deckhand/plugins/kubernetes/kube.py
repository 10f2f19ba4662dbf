"""Plumbing between the plugin and the Kubernetes API: client set-up, server-side apply,
deletion by label, and short readable messages from API errors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from deckhand import extras
from deckhand.plugin.errors import PluginError
from deckhand.plugins.kubernetes.config import IN_CLUSTER, KubernetesConfig
from deckhand.plugins.kubernetes.manifests import FIELD_MANAGER

APPLY = "application/apply-patch+yaml"
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class KubeError(PluginError):
    """The Kubernetes API refused or could not be reached; the message says which and why."""


def api_message(exc: Exception) -> str:
    """`403 Forbidden: deployments.apps is forbidden: ...` from an ApiException."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    if status is None:
        return f"{type(exc).__name__}: {exc}"
    message = ""
    if body:
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = str(body)[:300]
    return f"{status} {getattr(exc, 'reason', '')}: {message}".strip()


@dataclass
class Kube:
    """Typed API groups over one ApiClient, bound to the plugin's namespace."""

    api_client: Any
    namespace: str

    @classmethod
    def connect(cls, cfg: KubernetesConfig) -> Kube:
        try:
            from kubernetes import client, config
        except ImportError as exc:  # pragma: no cover - the extra is missing (the loader checks first)
            raise KubeError(extras.describe(extras.PLUGINS["kubernetes"])) from exc
        namespace = cfg.namespace
        try:
            if cfg.context == IN_CLUSTER:
                config.load_incluster_config()
                api_client = client.ApiClient()
                if namespace is None and os.path.exists(SA_NAMESPACE_FILE):
                    with open(SA_NAMESPACE_FILE) as fh:
                        namespace = fh.read().strip()
            else:
                api_client = config.new_client_from_config(config_file=cfg.kube_config_file, context=cfg.context)
                if namespace is None:
                    _, active = config.list_kube_config_contexts(config_file=cfg.kube_config_file)
                    contexts, _ = config.list_kube_config_contexts(config_file=cfg.kube_config_file)
                    chosen = next((c for c in contexts if c["name"] == cfg.context), active)
                    namespace = (chosen or {}).get("context", {}).get("namespace")
        except config.ConfigException as exc:
            hint = (
                "the plugin is not running in a pod; set kubeConfigContext to a context of your kubeconfig"
                if cfg.context == IN_CLUSTER
                else "check kubeConfigContext / kubeConfigFile (or KUBECONFIG)"
            )
            raise KubeError(f"kubeConfigContext {cfg.context!r}: {exc} ({hint})") from None
        return cls(api_client, namespace or "default")

    # ----- API groups -------------------------------------------------------------------
    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api_client)

    @property
    def batch(self) -> Any:
        from kubernetes import client

        return client.BatchV1Api(self.api_client)

    @property
    def networking(self) -> Any:
        from kubernetes import client

        return client.NetworkingV1Api(self.api_client)

    @property
    def autoscaling(self) -> Any:
        from kubernetes import client

        return client.AutoscalingV2Api(self.api_client)

    @property
    def policy(self) -> Any:
        from kubernetes import client

        return client.PolicyV1Api(self.api_client)

    def _kind_api(self, kind: str) -> tuple[Any, str]:
        table = {
            "Deployment": (self.apps, "deployment"),
            "Service": (self.core, "service"),
            "Ingress": (self.networking, "ingress"),
            "HorizontalPodAutoscaler": (self.autoscaling, "horizontal_pod_autoscaler"),
            "PodDisruptionBudget": (self.policy, "pod_disruption_budget"),
            "Job": (self.batch, "job"),
            "Secret": (self.core, "secret"),
        }
        if kind not in table:
            raise KubeError(f"no API mapping for kind {kind}")
        return table[kind]

    # ----- verbs -------------------------------------------------------------------------
    def apply(self, obj: dict[str, Any]) -> Any:
        """Server-side apply (fieldManager=deckhand, force): create or converge, idempotent."""
        api, suffix = self._kind_api(obj["kind"])
        meta = obj["metadata"]
        try:
            return getattr(api, f"patch_namespaced_{suffix}")(
                meta["name"],
                meta.get("namespace", self.namespace),
                obj,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
            )
        except Exception as exc:
            raise KubeError(f"applying {obj['kind']} {meta['name']} failed: {api_message(exc)}") from None

    def delete(self, kind: str, name: str, *, foreground: bool = False) -> bool:
        """Delete one object; False when it was already gone."""
        from kubernetes.client import ApiException, V1DeleteOptions

        api, suffix = self._kind_api(kind)
        body = V1DeleteOptions(propagation_policy="Foreground" if foreground else "Background")
        try:
            getattr(api, f"delete_namespaced_{suffix}")(name, self.namespace, body=body)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise KubeError(f"deleting {kind} {name} failed: {api_message(exc)}") from None

    @property
    def host(self) -> str:
        return str(getattr(self.api_client.configuration, "host", "?"))

    def read(self, kind: str, name: str) -> Any | None:
        from kubernetes.client import ApiException

        api, suffix = self._kind_api(kind)
        try:
            return getattr(api, f"read_namespaced_{suffix}")(name, self.namespace, _request_timeout=30)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(f"reading {kind} {name} failed: {api_message(exc)}") from None
        except Exception as exc:  # connection refused, timeouts: the API server is not reachable
            raise KubeError(f"cannot reach the Kubernetes API at {self.host} (reading {kind} {name}): {exc}") from None

    def list_objects(self, kind: str, selector: str) -> list[Any]:
        api, suffix = self._kind_api(kind)
        try:
            found = getattr(api, f"list_namespaced_{suffix}")(
                self.namespace, label_selector=selector, _request_timeout=30
            )
            return list(found.items)
        except Exception as exc:
            raise KubeError(f"listing {kind} ({selector}) at {self.host} failed: {api_message(exc)}") from None

    def pods(self, selector: str) -> list[Any]:
        try:
            return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)
        except Exception as exc:
            raise KubeError(f"listing pods ({selector}) failed: {api_message(exc)}") from None

    def log_tail(self, pod: str, container: str, lines: int = 20) -> str:
        try:
            text = self.core.read_namespaced_pod_log(pod, self.namespace, container=container, tail_lines=lines)
        except Exception:
            return ""
        return (text or "").strip()

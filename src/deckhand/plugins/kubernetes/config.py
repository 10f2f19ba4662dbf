"""Kubernetes plugin settings: bosun's documented keys plus the knobs production pods need.

Values come from pluginConfig merged with the private config file. Every mistake is a
``ConfigError`` naming the key, what was found and what to write instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from deckhand import __version__
from deckhand.plugin.action_config import truthy
from deckhand.plugin.constants import BosunPluginConfigConstants
from deckhand.plugin.errors import ConfigError, describe
from deckhand.plugins.public_routes import prediction_path

IN_CLUSTER = "IN_CLUSTER"

# ----- bosun's documented keys (kubernetes plugin) ----------------------------------------
KUBE_CONFIG_CONTEXT = "kubeConfigContext"
KUBE_NAMESPACE = "kubeNamespace"
AGENT_IMAGE = "agentImage"
OUTFACING_URL_PREFIX = "outfacingPredictionURLPrefix"
INGRESS_CLASS = "ingressClass"
PPS_BASE_IMAGE = "ppsBaseImage"
GENERATED_IMAGE_REPO = "generatedImageRepo"
KANIKO_IMAGE = "kanikoImage"
KANIKO_CONFIGMAP = "kanikoConfigmapName"
KANIKO_SECRET = "kanikoSecretName"
KANIKO_SERVICE_ACCOUNT = "kanikoServiceAccount"
DOCUMENTED_KEYS = (
    KUBE_CONFIG_CONTEXT,
    KUBE_NAMESPACE,
    AGENT_IMAGE,
    OUTFACING_URL_PREFIX,
    INGRESS_CLASS,
    PPS_BASE_IMAGE,
    GENERATED_IMAGE_REPO,
    KANIKO_IMAGE,
    KANIKO_CONFIGMAP,
    KANIKO_SECRET,
    KANIKO_SERVICE_ACCOUNT,
)

# ----- deckhand's additions ------------------------------------------------------------
KUBE_CONFIG_FILE = "kubeConfigFile"
REPLICAS = "replicas"
RESOURCES = "resources"
NODE_SELECTOR = "nodeSelector"
TOLERATIONS = "tolerations"
AFFINITY = "affinity"
SECURITY_CONTEXT = "securityContext"
POD_SECURITY_CONTEXT = "podSecurityContext"
EXTRA_ENV = "extraEnv"
EXTRA_VOLUMES = "extraVolumes"
EXTRA_VOLUME_MOUNTS = "extraVolumeMounts"
IMAGE_PULL_SECRETS = "imagePullSecrets"
HPA = "hpa"
PDB = "pdb"
INGRESS_ANNOTATIONS = "ingressAnnotations"
INSECURE_REGISTRIES = "insecureRegistries"
SKIP_TLS_VERIFY_REGISTRIES = "skipTlsVerifyRegistries"
KANIKO_EXTRA_ARGS = "kanikoExtraArgs"
KANIKO_EXTRA_VOLUMES = "kanikoExtraVolumes"
KANIKO_EXTRA_VOLUME_MOUNTS = "kanikoExtraVolumeMounts"
KANIKO_RESOURCES = "kanikoResources"
MODEL_PACKAGE_URL = "modelPackageUrl"
MODEL_PACKAGE_TOKEN_SECRET = "modelPackageTokenSecret"
MODEL_PACKAGE_TOKEN_SECRET_KEY = "modelPackageTokenSecretKey"
TRACKING_AGENT_ARGS = "trackingAgentArgs"
BUILD_TIMEOUT = "buildTimeoutSeconds"
BUILD_RETRIES = "buildRetries"
READY_TIMEOUT = "readyTimeoutSeconds"
PROGRESS_DEADLINE = "progressDeadlineSeconds"

DEFAULT_KANIKO_IMAGE = f"deckhand-kaniko:{__version__}"
DEFAULT_PACKAGE_URL = "{mlopsUrl}/api/v1/model-packages/{modelId}/artifact"

DEFAULTS: dict[str, Any] = {
    KUBE_CONFIG_CONTEXT: IN_CLUSTER,
    KUBE_CONFIG_FILE: None,
    KUBE_NAMESPACE: None,
    AGENT_IMAGE: None,
    OUTFACING_URL_PREFIX: None,
    INGRESS_CLASS: None,
    PPS_BASE_IMAGE: None,
    GENERATED_IMAGE_REPO: None,
    KANIKO_IMAGE: DEFAULT_KANIKO_IMAGE,
    KANIKO_CONFIGMAP: None,
    KANIKO_SECRET: None,
    KANIKO_SERVICE_ACCOUNT: None,
    REPLICAS: 1,
    RESOURCES: {},
    NODE_SELECTOR: {},
    TOLERATIONS: [],
    AFFINITY: {},
    SECURITY_CONTEXT: {},
    POD_SECURITY_CONTEXT: {},
    EXTRA_ENV: [],
    EXTRA_VOLUMES: [],
    EXTRA_VOLUME_MOUNTS: [],
    IMAGE_PULL_SECRETS: [],
    HPA: None,
    PDB: None,
    INGRESS_ANNOTATIONS: {},
    INSECURE_REGISTRIES: [],
    SKIP_TLS_VERIFY_REGISTRIES: [],
    KANIKO_EXTRA_ARGS: [],
    KANIKO_EXTRA_VOLUMES: [],
    KANIKO_EXTRA_VOLUME_MOUNTS: [],
    KANIKO_RESOURCES: {},
    MODEL_PACKAGE_URL: DEFAULT_PACKAGE_URL,
    MODEL_PACKAGE_TOKEN_SECRET: None,
    MODEL_PACKAGE_TOKEN_SECRET_KEY: "secret",
    TRACKING_AGENT_ARGS: ["--channel", "spool:/spool"],
    BUILD_TIMEOUT: 900,
    BUILD_RETRIES: 1,
    READY_TIMEOUT: 240,
    PROGRESS_DEADLINE: 120,
}
KNOWN_KEYS = frozenset(DEFAULTS)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_IMAGE_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    target_cpu: int


@dataclass(frozen=True)
class KubernetesConfig:
    """Typed, validated plugin settings (see DEFAULTS for the keys)."""

    context: str = IN_CLUSTER
    kube_config_file: str | None = None
    namespace: str | None = None
    agent_image: str | None = None
    url_prefix: str | None = None
    ingress_class: str | None = None
    pps_base_image: str | None = None
    generated_image_repo: str | None = None
    kaniko_image: str = DEFAULT_KANIKO_IMAGE
    kaniko_configmap: str | None = None
    kaniko_secret: str | None = None
    kaniko_service_account: str | None = None
    replicas: int = 1
    resources: dict[str, Any] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    affinity: dict[str, Any] = field(default_factory=dict)
    security_context: dict[str, Any] = field(default_factory=dict)
    pod_security_context: dict[str, Any] = field(default_factory=dict)
    extra_env: list[dict[str, Any]] = field(default_factory=list)
    extra_volumes: list[dict[str, Any]] = field(default_factory=list)
    extra_volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    image_pull_secrets: list[str] = field(default_factory=list)
    hpa: Autoscaling | None = None
    pdb_min_available: int | str | None = None
    ingress_annotations: dict[str, str] = field(default_factory=dict)
    insecure_registries: list[str] = field(default_factory=list)
    skip_tls_verify_registries: list[str] = field(default_factory=list)
    kaniko_extra_args: list[str] = field(default_factory=list)
    kaniko_extra_volumes: list[dict[str, Any]] = field(default_factory=list)
    kaniko_extra_volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    kaniko_resources: dict[str, Any] = field(default_factory=dict)
    model_package_url: str = DEFAULT_PACKAGE_URL
    model_package_token_secret: str | None = None
    model_package_token_secret_key: str = "secret"
    tracking_agent_args: list[str] = field(default_factory=list)
    build_timeout: float = 900
    build_retries: int = 1
    ready_timeout: float = 240
    progress_deadline: int = 120
    mlops_url: str | None = None
    environment_id: str | None = None
    monitoring: bool = False

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> KubernetesConfig:
        merged = {**DEFAULTS, **{k: v for k, v in values.items() if k in KNOWN_KEYS and v is not None}}
        # keys that look like ours but are misspelled: say so rather than ignore them
        for key in values:
            if key in KNOWN_KEYS or not isinstance(key, str) or key.isupper() or key[:1].isupper():
                continue
            close = [k for k in KNOWN_KEYS if k.lower() == key.lower()]
            if close:
                raise ConfigError(key, "is not a kubernetes plugin key", f"did you mean {close[0]}?")
        s = _Checker(merged)
        namespace = s.opt_str(KUBE_NAMESPACE)
        if namespace is not None and not _DNS_LABEL.match(namespace):
            raise ConfigError(KUBE_NAMESPACE, f"{namespace!r} is not a valid namespace name", "use a DNS label")
        url_prefix = s.opt_str(OUTFACING_URL_PREFIX)
        if url_prefix is not None:
            parts = urlsplit(url_prefix)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    OUTFACING_URL_PREFIX,
                    f"{url_prefix!r} is not an http(s) URL",
                    "write e.g. http://models.example.com/deployments/",
                )
            path = parts.path.rstrip("/")
            if path not in ("", "/deployments"):
                raise ConfigError(
                    OUTFACING_URL_PREFIX,
                    f"path {parts.path!r} is not supported: the prediction server answers "
                    "/deployments/<id>/predictions",
                    "end the prefix with /deployments/ (or no path); rewrites are ingress-controller "
                    "specific, add them with ingressAnnotations",
                )
        repo = s.opt_str(GENERATED_IMAGE_REPO)
        if repo is not None and (not _IMAGE_REPO.match(repo) or repo.rsplit("/", 1)[-1].count(":")):
            raise ConfigError(
                GENERATED_IMAGE_REPO,
                f"{repo!r} is not an image repository",
                "give registry/path without a tag; images are tagged <repo>:m-<model id>",
            )
        hpa = _autoscaling(merged[HPA])
        pdb = merged[PDB]
        pdb_min: int | str | None = None
        if pdb is not None:
            if not isinstance(pdb, dict) or set(pdb) - {"minAvailable"}:
                raise ConfigError(PDB, f"expected {{minAvailable: N or 'N%'}}, got {describe(pdb)}")
            pdb_min = pdb.get("minAvailable", 1)
            if not (isinstance(pdb_min, int) and not isinstance(pdb_min, bool)) and not (
                isinstance(pdb_min, str) and re.fullmatch(r"\d{1,3}%", pdb_min)
            ):
                raise ConfigError(
                    f"{PDB}.minAvailable", f"expected an integer or a percentage, got {describe(pdb_min)}"
                )
        replicas = s.int_(REPLICAS, minimum=1)
        return cls(
            context=s.str_(KUBE_CONFIG_CONTEXT),
            kube_config_file=s.opt_str(KUBE_CONFIG_FILE),
            namespace=namespace,
            agent_image=s.opt_str(AGENT_IMAGE),
            url_prefix=url_prefix,
            ingress_class=s.opt_str(INGRESS_CLASS),
            pps_base_image=s.opt_str(PPS_BASE_IMAGE),
            generated_image_repo=repo,
            kaniko_image=s.str_(KANIKO_IMAGE),
            kaniko_configmap=s.opt_name(KANIKO_CONFIGMAP),
            kaniko_secret=s.opt_name(KANIKO_SECRET),
            kaniko_service_account=s.opt_name(KANIKO_SERVICE_ACCOUNT),
            replicas=replicas,
            resources=s.mapping(RESOURCES),
            node_selector={str(k): str(v) for k, v in s.mapping(NODE_SELECTOR).items()},
            tolerations=s.list_of_mappings(TOLERATIONS),
            affinity=s.mapping(AFFINITY),
            security_context=s.mapping(SECURITY_CONTEXT),
            pod_security_context=s.mapping(POD_SECURITY_CONTEXT),
            extra_env=s.env_list(EXTRA_ENV),
            extra_volumes=s.list_of_mappings(EXTRA_VOLUMES, need="name"),
            extra_volume_mounts=s.list_of_mappings(EXTRA_VOLUME_MOUNTS, need="mountPath"),
            image_pull_secrets=s.names(IMAGE_PULL_SECRETS),
            hpa=hpa,
            pdb_min_available=pdb_min,
            ingress_annotations={str(k): str(v) for k, v in s.mapping(INGRESS_ANNOTATIONS).items()},
            insecure_registries=s.strings(INSECURE_REGISTRIES),
            skip_tls_verify_registries=s.strings(SKIP_TLS_VERIFY_REGISTRIES),
            kaniko_extra_args=s.strings(KANIKO_EXTRA_ARGS),
            kaniko_extra_volumes=s.list_of_mappings(KANIKO_EXTRA_VOLUMES, need="name"),
            kaniko_extra_volume_mounts=s.list_of_mappings(KANIKO_EXTRA_VOLUME_MOUNTS, need="mountPath"),
            kaniko_resources=s.mapping(KANIKO_RESOURCES),
            model_package_url=s.str_(MODEL_PACKAGE_URL),
            model_package_token_secret=s.opt_name(MODEL_PACKAGE_TOKEN_SECRET),
            model_package_token_secret_key=s.str_(MODEL_PACKAGE_TOKEN_SECRET_KEY),
            tracking_agent_args=s.strings(TRACKING_AGENT_ARGS),
            build_timeout=s.number(BUILD_TIMEOUT),
            build_retries=s.int_(BUILD_RETRIES, minimum=0),
            ready_timeout=s.number(READY_TIMEOUT),
            progress_deadline=s.int_(PROGRESS_DEADLINE, minimum=10),
            mlops_url=_opt(values.get(BosunPluginConfigConstants.MLOPS_URL)) or _opt(os.environ.get("DECKHAND_URL")),
            environment_id=_opt(values.get(BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_ID_KEY)),
            monitoring=truthy(values.get(BosunPluginConfigConstants.MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING_KEY)),
        )

    # ----- what actions need, checked when they need it --------------------------------
    def require(self, *keys: str) -> None:
        attrs = {
            PPS_BASE_IMAGE: self.pps_base_image,
            GENERATED_IMAGE_REPO: self.generated_image_repo,
            OUTFACING_URL_PREFIX: self.url_prefix,
        }
        missing = [k for k in keys if not attrs.get(k)]
        if missing:
            raise ConfigError(
                ", ".join(missing),
                "is not set",
                "set it in the environment's plugin config (the Helm chart sets it from imageBuilder.* "
                "and predictionServer.* values)",
            )

    def model_image(self, model_id: str) -> str:
        self.require(GENERATED_IMAGE_REPO)
        return f"{self.generated_image_repo}:m-{model_id}"

    def prediction_url(self, deployment_id: str) -> str | None:
        if not self.url_prefix:
            return None
        parts = urlsplit(self.url_prefix)
        return f"{parts.scheme}://{parts.netloc}{prediction_path(deployment_id)}"

    @property
    def ingress_host(self) -> str | None:
        """The Ingress rule's host: the prefix's host name unless it is an IP address."""
        if not self.url_prefix:
            return None
        host = urlsplit(self.url_prefix).hostname or ""
        if not host or re.fullmatch(r"[\d.]+", host) or ":" in host or host == "localhost":
            return None
        return host

    def package_url(self, model_id: str) -> str:
        if "{mlopsUrl}" in self.model_package_url and not self.mlops_url:
            raise ConfigError(
                MODEL_PACKAGE_URL,
                "needs mlopsUrl (the control plane URL) and none was given",
                "set pluginConfig.mlopsUrl, or modelPackageUrl to a URL the build pod can fetch",
            )
        return self.model_package_url.format(mlopsUrl=(self.mlops_url or "").rstrip("/"), modelId=model_id)


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _autoscaling(value: Any) -> Autoscaling | None:
    if value in (None, False, {}):
        return None
    if not isinstance(value, dict):
        raise ConfigError(HPA, f"expected a mapping {{min, max, targetCPU}}, got {describe(value)}")
    aliases = {"min": "min", "minReplicas": "min", "max": "max", "maxReplicas": "max", "targetCPU": "targetCPU"}
    aliases["targetCPUUtilizationPercentage"] = "targetCPU"
    unknown = [k for k in value if k not in aliases and k != "enabled"]
    if unknown:
        raise ConfigError(f"{HPA}.{unknown[0]}", "is not a known key", "use min, max and targetCPU")
    if value.get("enabled") is False:
        return None
    got = {aliases[k]: v for k, v in value.items() if k in aliases}
    for key, default in (("min", 1), ("max", None), ("targetCPU", 80)):
        got.setdefault(key, default)
        if not isinstance(got[key], int) or isinstance(got[key], bool) or got[key] < 1:
            raise ConfigError(f"{HPA}.{key}", f"expected a positive integer, got {describe(got[key])}")
    if got["max"] < got["min"]:
        raise ConfigError(f"{HPA}.max", f"{got['max']} is below hpa.min {got['min']}")
    if got["targetCPU"] > 100:
        raise ConfigError(f"{HPA}.targetCPU", f"{got['targetCPU']} is not a percentage (1-100)")
    return Autoscaling(got["min"], got["max"], got["targetCPU"])


class _Checker:
    def __init__(self, values: dict[str, Any]):
        self.v = values

    def str_(self, key: str) -> str:
        value = self.v[key]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(key, f"expected a non-empty string, got {describe(value)}")
        return value.strip()

    def opt_str(self, key: str) -> str | None:
        value = self.v[key]
        if value is None or value == "":
            return None
        return self.str_(key)

    def opt_name(self, key: str) -> str | None:
        value = self.opt_str(key)
        if value is not None and not _DNS_SUBDOMAIN.match(value):
            raise ConfigError(key, f"{value!r} is not a Kubernetes object name", "lower case letters, digits, '-', '.'")
        return value

    def int_(self, key: str, minimum: int) -> int:
        value = self.v[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(key, f"expected an integer >= {minimum}, got {describe(value)}")
        return value

    def number(self, key: str) -> float:
        value = self.v[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(key, f"expected a positive number of seconds, got {describe(value)}")
        return float(value)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.v[key]
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {describe(value)}")
        return dict(value)

    def list_of_mappings(self, key: str, need: str | None = None) -> list[dict[str, Any]]:
        value = self.v[key]
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {describe(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise ConfigError(f"{key}[{i}]", f"expected a mapping, got {describe(item)}")
            if need and not item.get(need):
                raise ConfigError(f"{key}[{i}].{need}", "is missing")
        return [dict(item) for item in value]

    def env_list(self, key: str) -> list[dict[str, Any]]:
        value = self.v[key]
        if isinstance(value, dict):  # {NAME: value} is accepted too
            return [{"name": str(k), "value": str(v)} for k, v in value.items()]
        items = self.list_of_mappings(key, need="name")
        return items

    def strings(self, key: str) -> list[str]:
        value = self.v[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise ConfigError(key, f"expected a list of strings, got {describe(value)}")
        return list(value)

    def names(self, key: str) -> list[str]:
        out = []
        for i, item in enumerate(self.v[key] if isinstance(self.v[key], list) else [self.v[key]]):
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name):
                raise ConfigError(f"{key}[{i}]", f"expected a secret name, got {describe(item)}")
            out.append(name)
        return out

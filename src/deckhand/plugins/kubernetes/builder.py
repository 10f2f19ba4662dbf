"""Model images: `<generatedImageRepo>:m-<model id>` = the prediction-server base image
plus the model package, built in the cluster by a Kaniko Job when the registry lacks it.

The package reaches the build pod without a ConfigMap or Secret (so its size does not
matter): an init container (the base image, which has Python) streams it from the
control plane's artifact URL into an emptyDir, checks its sha256 and writes the
Dockerfile; Kaniko then builds from that directory and pushes.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from deckhand.plugin.errors import PluginError
from deckhand.plugins.kubernetes.config import PPS_BASE_IMAGE, KubernetesConfig
from deckhand.plugins.kubernetes.kube import Kube, KubeError, api_message
from deckhand.plugins.kubernetes.manifests import (
    LABEL_COMPONENT,
    LABEL_MANAGED_BY,
    LABEL_MODEL,
    MANAGED_BY,
    PACKAGE_PATH,
    add_pull_secrets_and_placement,
    label_value,
    object_name,
)

WORKSPACE = "/workspace"
FETCH_CONTAINER = "fetch-package"
KANIKO_CONTAINER = "kaniko"
DOCKER_CONFIG_DIR = "/kaniko/.docker"
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError")

FETCH_SCRIPT = f"""
import hashlib, os, sys, urllib.error, urllib.request
url = os.environ["PACKAGE_URL"]
token = os.environ.get("PACKAGE_TOKEN", "")
req = urllib.request.Request(url, headers={{"Authorization": "Bearer " + token}} if token else {{}})
digest, size = hashlib.sha256(), 0
try:
    with urllib.request.urlopen(req, timeout=60) as resp, open("{WORKSPACE}/.model.part", "wb") as out:
        expected = (resp.headers.get("X-Checksum-Sha256") or "").lower()
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
except urllib.error.HTTPError as exc:
    sys.exit(f"fetching the model package from {{url}} failed: HTTP {{exc.code}} {{exc.read()[:300]!r}}")
except OSError as exc:
    sys.exit(f"fetching the model package from {{url}} failed: {{exc}}")
if expected and expected != digest.hexdigest():
    sys.exit(f"model package from {{url}}: sha256 {{digest.hexdigest()}} does not match {{expected}}")
os.rename("{WORKSPACE}/.model.part", "{WORKSPACE}/model.dhpkg")
with open("{WORKSPACE}/Dockerfile", "w") as fh:
    fh.write("FROM " + os.environ["BASE_IMAGE"] + "\\nCOPY model.dhpkg {PACKAGE_PATH}\\n")
print(f"fetched {{size}} bytes, sha256 {{digest.hexdigest()}}")
"""


class BuildError(PluginError):
    """The model image could not be built or pushed; the message says why."""


@dataclass(frozen=True)
class BuildResult:
    image: str
    built: bool  # False: the image was already in the registry
    seconds: float
    message: str


def registry_of(image: str) -> str:
    """`registry.example.com:5000` of `registry.example.com:5000/a/b:tag` (docker.io when none)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def split_reference(image: str) -> tuple[str, str, str]:
    """(registry, repository path, tag) of an image reference."""
    registry = registry_of(image)
    path = image[len(registry) + 1 :] if image.startswith(registry + "/") else image
    if "@" in path:
        repo, _, tag = path.partition("@")
        return registry, repo, tag
    repo, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "latest")
    if registry == "docker.io" and "/" not in repo:
        repo = f"library/{repo}"
    return registry, repo, tag


def job_name(model_id: str) -> str:
    return object_name(f"m-{model_id}", prefix="dh-build-")


def build_job(cfg: KubernetesConfig, namespace: str, model_id: str, image: str, package_url: str) -> dict[str, Any]:
    """The Kaniko Job manifest for one model image."""
    cfg.require(PPS_BASE_IMAGE)
    assert cfg.pps_base_image is not None
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: "image-builder",
        LABEL_MODEL: label_value(model_id),
    }
    fetch_env: list[dict[str, Any]] = [
        {"name": "PACKAGE_URL", "value": package_url},
        {"name": "BASE_IMAGE", "value": cfg.pps_base_image},
    ]
    if cfg.model_package_token_secret:
        fetch_env.append(
            {
                "name": "PACKAGE_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": cfg.model_package_token_secret, "key": cfg.model_package_token_secret_key}
                },
            }
        )
    args = [
        f"--dockerfile={WORKSPACE}/Dockerfile",
        f"--context=dir://{WORKSPACE}",
        f"--destination={image}",
        "--snapshot-mode=redo",
        "--push-retry=2",
        *(f"--insecure-registry={r}" for r in cfg.insecure_registries),
        *(f"--skip-tls-verify-registry={r}" for r in cfg.skip_tls_verify_registries),
        *cfg.kaniko_extra_args,
    ]
    volumes: list[dict[str, Any]] = [{"name": "workspace", "emptyDir": {}}]
    kaniko_mounts: list[dict[str, Any]] = [{"name": "workspace", "mountPath": WORKSPACE}]
    if cfg.kaniko_secret:  # a kubernetes.io/dockerconfigjson secret (kubectl create secret docker-registry)
        volumes.append(
            {
                "name": "docker-config",
                "secret": {
                    "secretName": cfg.kaniko_secret,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
        kaniko_mounts.append({"name": "docker-config", "mountPath": DOCKER_CONFIG_DIR, "readOnly": True})
    elif cfg.kaniko_configmap:  # e.g. {"credsStore": "ecr-login"} as config.json
        volumes.append({"name": "docker-config", "configMap": {"name": cfg.kaniko_configmap}})
        kaniko_mounts.append({"name": "docker-config", "mountPath": DOCKER_CONFIG_DIR, "readOnly": True})
    if cfg.kaniko_secret and cfg.kaniko_configmap:  # both: the configmap's files beside the secret
        volumes.append({"name": "docker-config-extra", "configMap": {"name": cfg.kaniko_configmap}})
        kaniko_mounts.append({"name": "docker-config-extra", "mountPath": "/kaniko/.docker-extra", "readOnly": True})
    kaniko: dict[str, Any] = {
        "name": KANIKO_CONTAINER,
        "image": cfg.kaniko_image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "volumeMounts": kaniko_mounts + cfg.kaniko_extra_volume_mounts,
    }
    if cfg.kaniko_resources:
        kaniko["resources"] = cfg.kaniko_resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "initContainers": [
            {
                "name": FETCH_CONTAINER,
                "image": cfg.pps_base_image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c", FETCH_SCRIPT],
                "env": fetch_env,
                "volumeMounts": [{"name": "workspace", "mountPath": WORKSPACE}],
            }
        ],
        "containers": [kaniko],
        "volumes": volumes + cfg.kaniko_extra_volumes,
    }
    if cfg.kaniko_service_account:
        pod_spec["serviceAccountName"] = cfg.kaniko_service_account
    else:
        pod_spec["automountServiceAccountToken"] = False
    add_pull_secrets_and_placement(pod_spec, cfg)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(model_id),
            "namespace": namespace,
            "labels": labels,
            "annotations": {"deckhand.io/model-id": model_id, "deckhand.io/image": image},
        },
        "spec": {
            "backoffLimit": 0,  # the agent retries the action, with backoff, and a fresh Job
            "activeDeadlineSeconds": int(cfg.build_timeout),
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


# ----- does the image exist? ------------------------------------------------------------
def _docker_auth(kube: Kube | None, cfg: KubernetesConfig, registry: str) -> tuple[str, str] | None:
    if kube is None or not cfg.kaniko_secret:
        return None
    try:
        secret = kube.core.read_namespaced_secret(cfg.kaniko_secret, kube.namespace)
    except Exception:
        return None  # no permission or no secret: the check is only an optimisation
    raw = (secret.data or {}).get(".dockerconfigjson")
    if not raw:
        return None
    try:
        auths = json.loads(base64.b64decode(raw)).get("auths", {})
    except ValueError:
        return None
    for server, entry in auths.items():
        host = server.removeprefix("https://").removeprefix("http://").split("/")[0]
        if host == registry:
            if entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
            if entry.get("username"):
                return entry["username"], entry.get("password", "")
    return None


def image_exists(image: str, cfg: KubernetesConfig, kube: Kube | None = None, timeout: float = 10) -> bool | None:
    """HEAD the manifest (registry v2 API). None when the registry cannot tell us (then build)."""
    import httpx

    registry, repo, tag = split_reference(image)
    host = "registry-1.docker.io" if registry == "docker.io" else registry
    scheme = "http" if registry in cfg.insecure_registries else "https"
    verify = registry not in cfg.skip_tls_verify_registries
    url = f"{scheme}://{host}/v2/{repo}/manifests/{tag}"
    accept = ", ".join(
        (
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
    )
    auth = _docker_auth(kube, cfg, registry)
    try:
        with httpx.Client(verify=verify, timeout=timeout) as http:
            resp = http.head(url, headers={"Accept": accept}, auth=auth)  # type: ignore[arg-type]
            if resp.status_code == 401 and "bearer" in resp.headers.get("www-authenticate", "").lower():
                token = _bearer_token(http, resp.headers["www-authenticate"], auth)
                if token:
                    resp = http.head(url, headers={"Accept": accept, "Authorization": f"Bearer {token}"})
    except httpx.HTTPError:
        return None
    if resp.status_code == 200:
        return True
    if resp.status_code == 404:
        return False
    return None


def _bearer_token(http: Any, challenge: str, auth: tuple[str, str] | None) -> str | None:
    params = dict(part.split("=", 1) for part in challenge.split(" ", 1)[1].replace('"', "").split(",") if "=" in part)
    realm = params.pop("realm", None)
    if not realm:
        return None
    try:
        resp = http.get(realm, params=params, auth=auth)
        body = resp.json()
    except Exception:
        return None
    return body.get("token") or body.get("access_token")


# ----- running the build ----------------------------------------------------------------
def _job_failed(job: Any) -> str | None:
    for cond in (job.status.conditions or []) if job.status else []:
        if cond.type == "Failed" and cond.status == "True":
            return f"{cond.reason}: {cond.message}" if cond.message else str(cond.reason)
    if job.status and (job.status.failed or 0) > 0:
        return "a build pod failed"
    return None


def _job_succeeded(job: Any) -> bool:
    if job.status and (job.status.succeeded or 0) > 0:
        return True
    return any(c.type == "Complete" and c.status == "True" for c in (job.status.conditions or []) if job.status)


def _pod_problem(kube: Kube, pod: Any) -> tuple[str | None, bool]:
    """(description of what is wrong, whether it is final) for a build pod."""
    statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
    for st in statuses:
        waiting = st.state.waiting if st.state else None
        if waiting and waiting.reason in PULL_FAILURES:
            return f"container {st.name}: {waiting.reason}: {waiting.message or ''}".strip(), True
        term = st.state.terminated if st.state else None
        if term and term.exit_code not in (0, None):
            tail = kube.log_tail(pod.metadata.name, st.name, 15)
            detail = f"container {st.name} exited {term.exit_code} ({term.reason})"
            if tail:
                detail += "; last log lines:\n" + tail
            return detail, True
    for cond in pod.status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return f"build pod not scheduled: {cond.message}", False
    return None, False


def describe_failure(kube: Kube, name: str, reason: str) -> str:
    pods = kube.pods(f"job-name={name}")
    details = [d for d, _ in (_pod_problem(kube, p) for p in pods) if d]
    text = f"image build Job {name} failed: {reason}"
    if details:
        text += "; " + "; ".join(details)
    return text


def ensure_image(
    kube: Kube,
    cfg: KubernetesConfig,
    model_id: str,
    *,
    package_url: str,
    log: Any = None,
    poll: float = 2.0,
) -> BuildResult:
    """Make sure `<generatedImageRepo>:m-<model_id>` exists; build it with Kaniko if not.

    A failed build is retried `buildRetries` times with a fresh Job (a registry that timed
    out once is common on a busy cluster); the last failure is raised."""
    started = time.monotonic()
    image = cfg.model_image(model_id)
    if image_exists(image, cfg, kube):
        return BuildResult(image, False, time.monotonic() - started, f"image {image} already in the registry")
    for attempt in range(cfg.build_retries + 1):
        try:
            result = _build_once(kube, cfg, model_id, image, package_url, log, poll)
        except BuildError as exc:
            if attempt >= cfg.build_retries:
                if attempt:
                    raise BuildError(f"{exc} (after {attempt + 1} attempts)") from None
                raise
            if log:
                log.warning("event=build_retry attempt=%d error=%r", attempt + 1, str(exc)[:500])
            continue
        seconds = time.monotonic() - started
        return BuildResult(result.image, True, seconds, result.message)
    raise AssertionError("unreachable")


def _build_once(
    kube: Kube, cfg: KubernetesConfig, model_id: str, image: str, package_url: str, log: Any, poll: float
) -> BuildResult:
    started = time.monotonic()
    name = job_name(model_id)
    existing = kube.read("Job", name)
    if existing is not None and existing.metadata.deletion_timestamp is not None:
        _wait_gone(kube, name, 60)
        existing = None
    if existing is not None and (_job_failed(existing) or _job_succeeded(existing)):
        # A finished Job whose image is missing (failed, or the registry lost it): start over.
        if log:
            log.info("event=build_job_restart job=%s reason=%s", name, _job_failed(existing) or "image missing")
        kube.delete("Job", name, foreground=True)
        _wait_gone(kube, name, 60)
        existing = None
    if existing is None:
        kube.apply(build_job(cfg, kube.namespace, model_id, image, package_url))
        if log:
            log.info("event=build_job_started job=%s image=%s", name, image)
    deadline = time.monotonic() + cfg.build_timeout + 30
    seen_problem: dict[str, int] = {}
    while True:
        job = kube.read("Job", name)
        if job is None:
            raise BuildError(f"image build Job {name} disappeared while building {image}")
        if _job_succeeded(job):
            seconds = time.monotonic() - started
            return BuildResult(image, True, seconds, f"built and pushed {image} in {seconds:.0f} s (Job {name})")
        failed = _job_failed(job)
        if failed:
            raise BuildError(describe_failure(kube, name, failed))
        for pod in kube.pods(f"job-name={name}"):
            problem, final = _pod_problem(kube, pod)
            if problem and final:
                count = seen_problem[problem] = seen_problem.get(problem, 0) + 1
                if count >= 3 or "exited" in problem:  # pull errors: a few polls, then give up
                    kube.delete("Job", name, foreground=True)
                    _wait_gone(kube, name, 60)
                    raise BuildError(f"image build Job {name} failed: {problem}")
        if time.monotonic() > deadline:
            pods = kube.pods(f"job-name={name}")
            detail = "; ".join(d for d, _ in (_pod_problem(kube, p) for p in pods) if d) or "no pod problem seen"
            kube.delete("Job", name)
            raise BuildError(
                f"image build Job {name} did not finish within {cfg.build_timeout:.0f} s ({detail}); "
                "raise buildTimeoutSeconds or check the build pod"
            )
        time.sleep(poll)


def _wait_gone(kube: Kube, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if kube.read("Job", name) is None:
                return
        except KubeError:
            pass
        time.sleep(1)
    raise BuildError(f"old image build Job {name} still present after {timeout:.0f} s; delete it by hand")


__all__ = ["BuildError", "BuildResult", "api_message", "build_job", "ensure_image", "image_exists", "registry_of"]

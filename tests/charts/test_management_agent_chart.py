"""charts/deckhand-management-agent: lint and render every example values file, the documented
minimum `--set` install, and schema/required-value errors a person can act on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import run_helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "deckhand-management-agent"
EXAMPLES = sorted((CHART / "examples").glob("*_values.yaml"))

pytestmark = pytest.mark.k8s

# bosun's documented minimum install, with our names for the images.
DOCUMENTED_MINIMUM = [
    "predictionServer.ingressClassName=mlops",
    "predictionServer.outfacingUrlRoot=http://your-company.com/deployments/",
    "datarobot.apiSecretName=mlops-api-key",
    "datarobot.predictionEnvId=pe-123",
    "managementAgent.repository=registry.your-company.com/deckhand/deckhand-agent",
    "trackingAgent.image=registry.your-company.com/deckhand/deckhand-tracking-agent:0.1.0",
    "imageBuilder.ppsImage=registry.your-company.com/deckhand/deckhand-pps:0.1.0",
    "imageBuilder.generatedImageRepository=registry.your-company.com/mlops/frozen-models",
    "deckhand.url=http://deckhand.mlops.svc:8000",
]


def render(helm: str, *args: str) -> dict[tuple[str, str], dict]:
    proc = run_helm(helm, "template", "dh", str(CHART), "--namespace", "deckhand", *args)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def plugin_config(objs: dict[tuple[str, str], dict]) -> dict:
    cm = next(o for (kind, _), o in objs.items() if kind == "ConfigMap")
    agent = yaml.safe_load(cm["data"]["agent.yaml"])
    (env,) = agent["environments"]
    assert env["plugin"] == "kubernetes"
    return env["pluginConfig"]


def test_every_example_is_there() -> None:
    assert {p.name for p in EXAMPLES} == {f"{n}_values.yaml" for n in ("aws", "azure", "gcp", "openshift", "generic")}


@pytest.mark.parametrize("values", EXAMPLES, ids=lambda p: p.stem)
def test_example_lints_and_renders(helm: str, values: Path) -> None:
    lint = run_helm(helm, "lint", str(CHART), "--strict", "-f", str(values))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    objs = render(helm, "-f", str(values))
    kinds = sorted({kind for kind, _ in objs})
    assert {"ConfigMap", "Deployment", "Role", "RoleBinding"} <= set(kinds)
    config = plugin_config(objs)
    # every rendered plugin config is one the plugin accepts
    from deckhand.plugins.kubernetes.config import KubernetesConfig

    parsed = KubernetesConfig.from_mapping(config)
    assert parsed.context == "IN_CLUSTER" and parsed.namespace == "deckhand"
    deployment = objs[("Deployment", "dh-deckhand-management-agent")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    token = next(e for e in container["env"] if e["name"] == "DECKHAND_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "deckhand-api-token", "key": "secret"}


def test_aws_uses_the_ecr_config_map_and_an_existing_irsa_account(helm: str) -> None:
    objs = render(helm, "-f", str(CHART / "examples" / "aws_values.yaml"))
    config = plugin_config(objs)
    assert config["kanikoConfigmapName"] == "docker-config"
    assert config["kanikoServiceAccount"] == "deckhand-image-builder"
    assert ("ServiceAccount", "deckhand-image-builder") not in objs  # eksctl made it


def test_gcp_creates_the_annotated_image_builder_account(helm: str) -> None:
    objs = render(helm, "-f", str(CHART / "examples" / "gcp_values.yaml"))
    sa = objs[("ServiceAccount", "deckhand-image-builder")]
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith("gcr-push-user@")
    assert plugin_config(objs)["kanikoServiceAccount"] == "deckhand-image-builder"


def test_openshift_skips_tls_and_creates_no_builder_rbac(helm: str) -> None:
    objs = render(helm, "-f", str(CHART / "examples" / "openshift_values.yaml"))
    config = plugin_config(objs)
    assert config["skipTlsVerifyRegistries"] == ["image-registry.openshift-image-registry.svc:5000"]
    assert config["kanikoSecretName"] == "registry-creds"
    assert "ingressClass" not in config
    assert ("Role", "dh-deckhand-management-agent-image-builder") not in objs
    assert ("ServiceAccount", "deckhand-image-builder") not in objs


def test_generic_registry_is_insecure_with_hpa_and_pdb(helm: str) -> None:
    config = plugin_config(render(helm, "-f", str(CHART / "examples" / "generic_values.yaml")))
    assert config["insecureRegistries"] == ["registry.example.com:5000"]
    assert config["kanikoSecretName"] == "registry-creds"
    assert config["hpa"] == {"min": 2, "max": 5, "targetCPU": 70}
    assert config["pdb"] == {"minAvailable": 1}


def test_documented_minimum_install_with_datarobot_names(helm: str) -> None:
    args = [a for item in DOCUMENTED_MINIMUM for a in ("--set", item)]
    objs = render(helm, *args)
    config = plugin_config(objs)
    assert config["ingressClass"] == "mlops"
    assert config["generatedImageRepo"] == "registry.your-company.com/mlops/frozen-models"
    assert config["modelPackageTokenSecret"] == "mlops-api-key"
    cm = next(o for (kind, _), o in objs.items() if kind == "ConfigMap")
    assert yaml.safe_load(cm["data"]["agent.yaml"])["environments"][0]["id"] == "pe-123"
    image = objs[("Deployment", "dh-deckhand-management-agent")]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.your-company.com/deckhand/deckhand-agent:0.1.0"
    # the builder service account and its Role are created by default
    assert ("ServiceAccount", "dh-deckhand-management-agent-image-builder") in objs


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        # a wrong type
        (["--set", "predictionServer.replicas=two"], ["predictionServer", "replicas", "integer"]),
        # an unknown key (a typo of generatedImageRepository)
        (["--set", "imageBuilder.generatedImageRepo=x/y"], ["imageBuilder", "generatedImageRepo", "not allowed"]),
        # a value of the wrong shape
        (["--set", "predictionServer.outfacingUrlRoot=models.example.com"], ["outfacingUrlRoot", "does not match"]),
        (["--set", "imageBuilder.extraArguments[0]=insecure"], ["extraArguments", "does not match"]),
        (["--set", "managementAgent.pullPolicy=Sometimes"], ["pullPolicy", "Always", "IfNotPresent"]),
    ],
    ids=["wrong-type", "unknown-key", "bad-url", "bad-kaniko-flag", "bad-enum"],
)
def test_schema_rejects_mistakes_readably(helm: str, override: list[str], expected: list[str]) -> None:
    args = [a for item in DOCUMENTED_MINIMUM for a in ("--set", item)]
    proc = run_helm(helm, "template", "dh", str(CHART), *args, *override)
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    for word in expected:
        assert word in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("deckhand.url=", "deckhand.url is required"),
        ("datarobot.apiSecretName=", "deckhand.apiSecretName (or datarobot.apiSecretName) is required"),
        ("datarobot.predictionEnvId=", "deckhand.predictionEnvId (or datarobot.predictionEnvId) is required"),
        ("imageBuilder.ppsImage=", "imageBuilder.ppsImage is required"),
        ("imageBuilder.generatedImageRepository=", "imageBuilder.generatedImageRepository is required"),
    ],
)
def test_missing_required_value_says_what_to_set(helm: str, drop: str, message: str) -> None:
    kept = [item for item in DOCUMENTED_MINIMUM if not item.startswith(drop)]
    args = [a for item in kept for a in ("--set", item)]
    proc = run_helm(helm, "template", "dh", str(CHART), *args)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_deckhand_aliases_win_over_the_documented_names(helm: str) -> None:
    args = [a for item in DOCUMENTED_MINIMUM for a in ("--set", item)]
    objs = render(helm, *args, "--set", "deckhand.apiSecretName=dh-token", "--set", "deckhand.predictionEnvId=pe-9")
    assert plugin_config(objs)["modelPackageTokenSecret"] == "dh-token"
    cm = next(o for (kind, _), o in objs.items() if kind == "ConfigMap")
    assert yaml.safe_load(cm["data"]["agent.yaml"])["environments"][0]["id"] == "pe-9"


def test_tracking_agent_sidecar_needs_its_image(helm: str) -> None:
    args = [a for item in DOCUMENTED_MINIMUM if not item.startswith("trackingAgent.") for a in ("--set", item)]
    proc = run_helm(helm, "template", "dh", str(CHART), *args, "--set", "trackingAgent.enabled=true")
    assert proc.returncode != 0
    assert "trackingAgent.image is required when trackingAgent.enabled is true" in proc.stderr
    objs = render(helm, *args, "--set", "trackingAgent.enabled=true", "--set", "trackingAgent.image=reg/ta:1")
    assert plugin_config(objs)["agentImage"] == "reg/ta:1"
    assert "agentImage" not in plugin_config(render(helm, *args))  # off by default

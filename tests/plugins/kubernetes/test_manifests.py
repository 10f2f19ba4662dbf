"""The manifests of one deployment and the Kaniko Job, built without a cluster."""

from __future__ import annotations

import yaml

from deckhand.plugins.kubernetes import builder, manifests
from deckhand.plugins.kubernetes.config import KubernetesConfig

CFG = {
    "ppsBaseImage": "10.0.0.1:5000/deckhand/pps:0.1.0",
    "generatedImageRepo": "10.0.0.1:5000/deckhand/models",
    "outfacingPredictionURLPrefix": "http://models.example.com/deployments/",
    "ingressClass": "nginx",
    "MLOPS_BOSUN_PRED_ENV_ID": "pe-1",
    "mlopsUrl": "http://cp:8000",
}


def cfg(**extra) -> KubernetesConfig:
    return KubernetesConfig.from_mapping({**CFG, **extra})


def by_kind(objs: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objs}


def test_objects_are_labelled_and_wired() -> None:
    objs = by_kind(manifests.all_objects(cfg(), "ns", "d1", "m1", "img:m-m1"))
    assert set(objs) == {"Deployment", "Service", "Ingress"}
    for obj in objs.values():
        labels = obj["metadata"]["labels"]
        assert labels["deckhand.io/deployment-id"] == "d1"
        assert labels["deckhand.io/model-id"] == "m1"
        assert labels["app.kubernetes.io/managed-by"] == "deckhand"
        assert labels["deckhand.io/environment-id"] == "pe-1"
        assert obj["metadata"]["name"] == "dh-d1" and obj["metadata"]["namespace"] == "ns"
    dep = objs["Deployment"]["spec"]
    # the selector must not name the model: a model replacement rolls the same Deployment
    assert dep["selector"]["matchLabels"] == {"deckhand.io/deployment-id": "d1"}
    assert dep["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pod = dep["template"]["spec"]
    container = pod["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/ping"
    assert {"name": "DECKHAND_DEPLOYMENT_ID", "value": "d1"} in container["env"]
    assert len(pod["containers"]) == 1  # no tracking agent without monitoring
    svc = objs["Service"]["spec"]
    assert svc["selector"] == {"deckhand.io/deployment-id": "d1"}
    ing = objs["Ingress"]["spec"]
    assert ing["ingressClassName"] == "nginx"
    rule = ing["rules"][0]
    assert rule["host"] == "models.example.com"
    # only the public routes, each exact: nothing else under /deployments/d1 or /v2/models/d1 is routed
    assert [(p["path"], p["pathType"]) for p in rule["http"]["paths"]] == [
        ("/deployments/d1/predictions", "Exact"),
        ("/deployments/d1/predict", "Exact"),
        ("/deployments/d1/info", "Exact"),
        ("/deployments/d1", "Exact"),
        ("/v2/models/d1/infer", "Exact"),
        ("/v2/models/d1", "Exact"),
        ("/v2/models/d1/ready", "Exact"),
    ]
    assert {p["backend"]["service"]["name"] for p in rule["http"]["paths"]} == {"dh-d1"}
    assert objs["Ingress"]["metadata"]["annotations"]["deckhand.io/prediction-url"] == (
        "http://models.example.com/deployments/d1/predictions"
    )
    yaml.safe_dump(list(objs.values()))  # plain data, ready for server-side apply


def test_a_replaced_pod_keeps_serving_while_its_endpoint_is_dropped() -> None:
    """A terminating pod sleeps before its server gets SIGTERM, within the grace period:
    the Ingress still routes to it for a moment (502s and hung requests without it)."""
    pod = manifests.deployment(cfg(), "ns", "d1", "m1", "img:m-m1")["spec"]["template"]["spec"]
    hook = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert hook == ["sleep", str(manifests.DRAIN_SECONDS)]
    assert 0 < manifests.DRAIN_SECONDS < pod["terminationGracePeriodSeconds"] - 5  # time left to drain


def test_production_knobs_reach_the_pod() -> None:
    c = cfg(
        resources={"requests": {"cpu": "250m"}},
        nodeSelector={"pool": "models"},
        tolerations=[{"key": "models", "operator": "Exists"}],
        affinity={"nodeAffinity": {}},
        securityContext={"runAsNonRoot": True},
        podSecurityContext={"fsGroup": 1000},
        extraEnv={"OMP_NUM_THREADS": 1},
        extraVolumes=[{"name": "cache", "emptyDir": {}}],
        extraVolumeMounts=[{"name": "cache", "mountPath": "/cache"}],
        imagePullSecrets=["regcred"],
        hpa={"min": 2, "max": 4, "targetCPU": 70},
        pdb={"minAvailable": 1},
        ingressAnnotations={"nginx.ingress.kubernetes.io/proxy-body-size": "51m"},
    )
    objs = by_kind(manifests.all_objects(c, "ns", "d1", "m1", "img", kv={"memory": "1Gi"}))
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "1Gi"}
    assert container["resources"]["limits"] == {"memory": "1Gi"}
    assert container["securityContext"] == {"runAsNonRoot": True}
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in container["env"]
    assert {"name": "cache", "mountPath": "/cache"} in container["volumeMounts"]
    assert pod["nodeSelector"] == {"pool": "models"} and pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["securityContext"] == {"fsGroup": 1000} and pod["tolerations"][0]["key"] == "models"
    assert "replicas" not in objs["Deployment"]["spec"]  # the HPA owns the count
    hpa = objs["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 4)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert objs["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    assert objs["Ingress"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "51m"


def test_tracking_agent_sidecar_shares_the_spool() -> None:
    c = cfg(agentImage="reg/deckhand-tracking-agent:0.1.0", MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING=True)
    pod = manifests.deployment(c, "ns", "d1", "m1", "img")["spec"]["template"]["spec"]
    server, sidecar = pod["containers"]
    assert sidecar["image"] == "reg/deckhand-tracking-agent:0.1.0"
    assert {"name": "DECKHAND_MONITORING", "value": "spool:/spool"} in server["env"]
    assert {"name": "spool", "mountPath": "/spool"} in server["volumeMounts"]
    assert {"name": "spool", "mountPath": "/spool"} in sidecar["volumeMounts"]
    assert {"name": "spool", "emptyDir": {}} in pod["volumes"]


def test_names_and_label_values_stay_valid() -> None:
    long_id = "Deployment_With.Odd/Chars-" + "x" * 80
    name = manifests.object_name(long_id)
    assert len(name) <= 63 and name == name.lower() and name[0].isalnum() and name[-1].isalnum()
    assert manifests.object_name(long_id) != manifests.object_name(long_id + "y")
    value = manifests.label_value(long_id)
    assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()
    assert manifests.object_name("0123abcd") == "dh-0123abcd"


def test_kaniko_job() -> None:
    c = cfg(
        kanikoSecretName="registry-creds",
        kanikoServiceAccount="image-builder",
        insecureRegistries=["10.0.0.1:5000"],
        skipTlsVerifyRegistries=["internal:5000"],
        kanikoExtraArgs=["--registry-certificate=internal:5000=/certs/ca.crt"],
        modelPackageTokenSecret="api-token",
    )
    job = builder.build_job(c, "ns", "m1", c.model_image("m1"), c.package_url("m1"))
    assert job["metadata"]["name"] == "dh-build-m-m1"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 900
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "image-builder" and pod["restartPolicy"] == "Never"
    fetch = pod["initContainers"][0]
    assert fetch["image"] == "10.0.0.1:5000/deckhand/pps:0.1.0"
    env = {e["name"]: e for e in fetch["env"]}
    assert env["PACKAGE_URL"]["value"] == "http://cp:8000/api/v1/model-packages/m1/artifact"
    assert env["PACKAGE_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "api-token", "key": "secret"}
    kaniko = pod["containers"][0]
    assert "--destination=10.0.0.1:5000/deckhand/models:m-m1" in kaniko["args"]
    assert "--insecure-registry=10.0.0.1:5000" in kaniko["args"]
    assert "--skip-tls-verify-registry=internal:5000" in kaniko["args"]
    assert kaniko["args"][-1] == "--registry-certificate=internal:5000=/certs/ca.crt"
    secret = next(v for v in pod["volumes"] if v["name"] == "docker-config")
    assert secret["secret"]["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]
    assert {"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True} in kaniko["volumeMounts"]


def test_kaniko_job_with_a_config_map() -> None:
    c = cfg(kanikoConfigmapName="docker-config")
    pod = builder.build_job(c, "ns", "m1", "img", "http://x")["spec"]["template"]["spec"]
    assert {"name": "docker-config", "configMap": {"name": "docker-config"}} in pod["volumes"]
    assert pod["automountServiceAccountToken"] is False  # no service account given


def test_image_references() -> None:
    assert builder.split_reference("10.0.0.1:5000/a/b:m-1") == ("10.0.0.1:5000", "a/b", "m-1")
    assert builder.split_reference("gcr.io/p/models:m-2") == ("gcr.io", "p/models", "m-2")
    assert builder.split_reference("redis") == ("docker.io", "library/redis", "latest")
    assert builder.registry_of("user/app:1") == "docker.io"

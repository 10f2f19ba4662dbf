"""charts/deckhand-control-plane: lint and render the minimum install and every example values
file; what the pods get (PostgreSQL URL and S3 keys from Secrets, probes on routes the app
serves, non-root with a read-only root filesystem, a PDB with two replicas); values the chart
refuses, readably; and NOTES.txt, which never shows a secret."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import run_helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "deckhand-control-plane"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
KUBE_VERSION = "1.33.0"  # helm template assumes 1.20 without it

pytestmark = pytest.mark.k8s

# The least a multi-replica install needs: a database Secret and an S3 store.
MINIMUM = ["database.existingSecret=deckhand-database", "artifactStore.url=s3://deckhand-artifacts/packages"]
FULLNAME = "dh-deckhand-control-plane"


def sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def render(helm: str, *args: str, chart: Path = CHART) -> dict[tuple[str, str], dict]:
    proc = run_helm(helm, "template", "dh", str(chart), "-n", "deckhand", "--kube-version", KUBE_VERSION, *args)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def server(objs: dict[tuple[str, str], dict]) -> dict:
    (container,) = objs[("Deployment", FULLNAME)]["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def notes(helm: str, tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` prints it, rendered offline: a copy of the chart holding the
    file at its root and one template that renders it with `tpl` into a ConfigMap."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(CHART / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rendered-notes}\n"
        'data: {notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}}\n'
    )
    return render(helm, *args, chart=chart)[("ConfigMap", "rendered-notes")]["data"]["notes"]


def test_minimum_install_lints_and_renders(helm: str) -> None:
    lint = run_helm(helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, *sets(MINIMUM))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    objs = render(helm, *sets(MINIMUM))
    assert {kind for kind, _ in objs} == {"Deployment", "Service", "Secret", "ServiceAccount", "PodDisruptionBudget"}
    deployment = objs[("Deployment", FULLNAME)]
    assert deployment["spec"]["replicas"] == 2
    container = server(objs)
    assert container["args"][:4] == ["--host", "0.0.0.0", "--port", "8000"]
    env = env_of(container)
    assert env["DECKHAND_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "deckhand-database", "key": "url"}
    assert env["DECKHAND_ARTIFACT_STORE"]["value"] == "s3://deckhand-artifacts/packages"
    token_ref = env["DECKHAND_BOOTSTRAP_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token_ref == {"name": f"{FULLNAME}-admin-token", "key": "token"}
    # a generated admin token, at least as strong as the server demands, kept on uninstall
    secret = objs[("Secret", f"{FULLNAME}-admin-token")]
    import base64

    token = base64.b64decode(secret["data"]["token"]).decode()
    from deckhand.server.settings import ServerSettings

    assert ServerSettings(bootstrap_token=token).bootstrap_token == token
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # no AWS keys unless a Secret is named (the pod's own identity)
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"} & set(env)
    service = objs[("Service", FULLNAME)]
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]


def test_pods_run_non_root_on_a_read_only_root_filesystem(helm: str) -> None:
    objs = render(helm, *sets(MINIMUM))
    pod = objs[("Deployment", FULLNAME)]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    container = server(objs)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # every place the server writes is an emptyDir: its data dir (scratch) and /tmp
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert env_of(container)["DECKHAND_DATA_DIR"]["value"] == "/var/lib/deckhand/data"
    for path in ("/var/lib/deckhand", "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], path
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_probes_point_at_routes_the_app_serves(helm: str) -> None:
    from deckhand.server.app import openapi_document

    served = {path for path, item in openapi_document()["paths"].items() if "get" in item}
    container = server(render(helm, *sets(MINIMUM)))
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness", "liveness")}
    for kind, probe in probes.items():
        assert probe["path"] in served, f"{kind} probe on {probe['path']}, which the app does not serve"
        assert probe["port"] == "http"
    # readiness follows the database; liveness does not (an outage must not restart replicas)
    assert probes["readiness"]["path"] == "/healthz"
    assert probes["liveness"]["path"] == "/livez"


def test_probe_routes_answer_without_a_token(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from deckhand.server.app import create_app
    from deckhand.server.settings import ServerSettings

    with TestClient(create_app(ServerSettings(data_dir=tmp_path))) as api:
        assert api.get("/healthz").json()["database"] == "sqlite"
        assert api.get("/livez").json()["status"] == "ok"


def test_pdb_with_two_replicas_and_none_with_one(helm: str) -> None:
    pdb = render(helm, *sets(MINIMUM))[("PodDisruptionBudget", FULLNAME)]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "control-plane"
    one = render(helm, *sets(MINIMUM), "--set", "replicas=1")
    assert not any(kind == "PodDisruptionBudget" for kind, _ in one)


@pytest.mark.parametrize("values", EXAMPLES, ids=lambda p: p.stem)
def test_example_lints_and_renders(helm: str, values: Path) -> None:
    lint = run_helm(helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "-f", str(values))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    objs = render(helm, "-f", str(values))
    assert ("Ingress", FULLNAME) in objs and ("PodDisruptionBudget", FULLNAME) in objs
    env = env_of(server(objs))
    assert env["DECKHAND_ARTIFACT_STORE"]["value"].startswith("s3://")
    assert env["DECKHAND_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "deckhand-database"
    assert env["AWS_REGION"]["value"] == "us-east-1"
    ingress = objs[("Ingress", FULLNAME)]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "deckhand.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": FULLNAME, "port": {"name": "http"}}


def test_external_postgres_s3_takes_the_keys_from_a_secret(helm: str) -> None:
    objs = render(helm, "-f", str(CHART / "examples" / "external-postgres-s3.yaml"))
    env = env_of(server(objs))
    assert env["AWS_ENDPOINT_URL"]["value"] == "https://minio.example.com"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "deckhand-s3", "key": key}
    annotations = objs[("Ingress", FULLNAME)]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"  # packages are uploaded through it


def test_aws_example_uses_the_pods_iam_role(helm: str) -> None:
    objs = render(helm, "-f", str(CHART / "examples" / "aws-rds-s3-irsa.yaml"))
    sa = objs[("ServiceAccount", "deckhand-control-plane")]
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert objs[("Deployment", FULLNAME)]["spec"]["template"]["spec"]["serviceAccountName"] == "deckhand-control-plane"
    assert "AWS_ACCESS_KEY_ID" not in env_of(server(objs))


def test_database_url_value_goes_into_a_secret_not_the_pod_spec(helm: str) -> None:
    url = "postgresql://deckhand:s3cr3t-pw@db.example.com:5432/deckhand"
    objs = render(helm, "--set", f"database.url={url}", "--set", "replicas=1")
    deployment = yaml.safe_dump(objs[("Deployment", FULLNAME)])
    assert "s3cr3t-pw" not in deployment
    ref = env_of(server(objs))["DECKHAND_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"{FULLNAME}-database", "key": "url"}
    assert ("Secret", f"{FULLNAME}-database") in objs


def test_existing_token_secret_is_used_and_none_is_made(helm: str) -> None:
    existing = ["bootstrapToken.existingSecret=admin", "bootstrapToken.existingSecretKey=t"]
    objs = render(helm, *sets(MINIMUM), *sets(existing))
    assert not any(kind == "Secret" for kind, _ in objs)
    ref = env_of(server(objs))["DECKHAND_BOOTSTRAP_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "admin", "key": "t"}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (["replicas=0"], ["replicas", "minimum"]),
        (["replicas=two"], ["replicas", "integer"]),
        (["databse.url=postgresql://x/y"], ["databse", "not allowed"]),  # a typo is not ignored
        (["database.url=sqlite:///tmp/x.db"], ["database/url", "does not match"]),  # replicas cannot share SQLite
        (["artifactStore.url=/srv/artifacts"], ["artifactStore/url", "does not match"]),
        (["artifactStore.s3.endpointUrl=minio:9000"], ["endpointUrl", "does not match"]),
        (["bootstrapToken.value=short"], ["bootstrapToken/value", "does not match"]),
        (["ingress.host=https://deckhand.example.com"], ["ingress/host", "does not match"]),
        (["image.pullPolicy=Sometimes"], ["pullPolicy", "IfNotPresent"]),
    ],
    ids=[
        "replicas-0",
        "wrong-type",
        "unknown-key",
        "sqlite",
        "not-s3",
        "bad-endpoint",
        "weak-token",
        "host-url",
        "bad-enum",
    ],  # fmt: skip
)
def test_schema_rejects_mistakes_readably(helm: str, override: list[str], expected: list[str]) -> None:
    proc = run_helm(helm, "template", "dh", str(CHART), *sets(MINIMUM), *sets(override))
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr
    for word in expected:
        assert word in proc.stderr, proc.stderr


def test_missing_database_is_refused(helm: str) -> None:
    proc = run_helm(helm, "template", "dh", str(CHART), "--set", "artifactStore.url=s3://b/p")
    assert proc.returncode != 0
    for word in ("/database", "existingSecret", "url"):
        assert word in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["database.existingSecret=db"], "replicas is 2 but artifactStore.url is not an s3:// URL"),
        (["database.existingSecret=db", "replicas=3", "persistence.existingClaim=pvc"],
         "replicas is 3 but artifactStore.url is not an s3:// URL"),
        ([*MINIMUM, "persistence.existingClaim=pvc"],
         "persistence.existingClaim is for the artifacts of a store without S3"),
    ],
    ids=["replicas-without-s3", "a-claim-is-not-shared", "claim-with-s3"],
)  # fmt: skip
def test_rules_across_values_say_what_to_set(helm: str, values: list[str], message: str) -> None:
    proc = run_helm(helm, "template", "dh", str(CHART), *sets(values))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_one_replica_without_s3_renders_and_notes_warn(helm: str, tmp_path: Path) -> None:
    objs = render(helm, "--set", "database.existingSecret=db", "--set", "replicas=1")
    assert "DECKHAND_ARTIFACT_STORE" not in env_of(server(objs))
    assert "WARNING: model packages are kept in the pod's emptyDir" in notes(
        helm, tmp_path, "--set", "database.existingSecret=db", "--set", "replicas=1"
    )


def test_notes_say_how_to_reach_it_and_never_show_a_secret(helm: str, tmp_path: Path) -> None:
    token = "dh_" + "Q" * 40
    password = "pg-Pa55word-xyz"
    text = notes(
        helm, tmp_path, "-f", str(CHART / "examples" / "external-postgres-s3.yaml"),
        "--set", f"bootstrapToken.value={token}",
        "--set", "database.existingSecret=", "--set", f"database.url=postgresql://deckhand:{password}@db:5432/dh",
    )  # fmt: skip
    assert token not in text and password not in text
    assert "https://deckhand.example.com/" in text  # the Ingress, with TLS
    assert f"kubectl -n deckhand port-forward service/{FULLNAME}" in text
    assert f"get secret {FULLNAME}-admin-token" in text and "{.data.token}" in text
    assert f"--set deckhand.url=http://{FULLNAME}.deckhand.svc:8000" in text  # the agent chart
    assert "database.url is kept in the release's values" in text
    assert "WARNING" not in text

"""`helm upgrade --install` of charts/deckhand-control-plane into the real test cluster, as
docs/control-plane-helm.md says: two replicas of the deckhand-control-plane image on a
PostgreSQL database and an S3 bucket (SeaweedFS) on this host, their URL and keys in Secrets,
the admin token read from the chart's Secret (never printed), the API through an Ingress.
Then charts/deckhand-management-agent pointed at it through its Service, and a model deployed
end to end: environment and agent token through the chart's API, a package uploaded (into the
bucket, served by either replica), a deployment built by Kaniko, ready, and a prediction
through the Ingress.

The test cluster has no cluster DNS: pods reach the Service by its ClusterIP, and this host's
PostgreSQL and S3 (bound to 127.0.0.1) through forwarders on the pod-bridge gateway."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tests.plugins.kubernetes.helpers import (
    ROOT,
    helm,
    helm_set_args,
    install_agent,
    kubectl,
    predict,
    reachable_from_pods,
    wait_for,
    wait_ready,
)

pytestmark = [pytest.mark.timeout(1200), pytest.mark.postgres, pytest.mark.s3]
CHART = ROOT / "charts" / "deckhand-control-plane"
RELEASE = "cp"
FULLNAME = f"{RELEASE}-deckhand-control-plane"
CONTROL_PLANE_PODS = "app.kubernetes.io/component=control-plane"


@pytest.fixture
def pods_database(postgres_cluster) -> Iterator[str]:
    """A fresh database owned by a role with a password, on the session's PostgreSQL; its URL
    as pods reach it."""
    import psycopg

    url = postgres_cluster.create_database()
    name = url.rsplit("/", 1)[1]
    role, password = f"dh_{secrets.token_hex(4)}", secrets.token_urlsafe(18)
    admin = f"host=127.0.0.1 port={postgres_cluster.port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f'ALTER DATABASE "{name}" OWNER TO {role}')
    with reachable_from_pods(postgres_cluster.port, "PostgreSQL") as address:
        yield f"postgresql://{role}:{password}@{address}/{name}"


@pytest.fixture
def pods_s3(s3_server) -> Iterator[tuple[str, str]]:
    """(s3://<fresh bucket>/packages, the S3 endpoint as pods reach it)."""
    store = s3_server.new_bucket("packages")
    with reachable_from_pods(urlsplit(s3_server.endpoint_url).port, "S3") as address:
        yield store, f"http://{address}"


def control_plane_pods(env, ns: str) -> list[tuple[str, str, bool]]:
    """(name, pod IP, ready) of each control-plane pod."""
    out = kubectl(env, "-n", ns, "get", "pods", "-l", CONTROL_PLANE_PODS, "-o",
                  "jsonpath={range .items[*]}{.metadata.name} {.status.podIP} "
                  "{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}")  # fmt: skip
    return [(p[0], p[1], p[2] == "True") for p in map(str.split, out.splitlines()) if len(p) == 3]


def diagnose(env, ns: str) -> str:
    """What a failed rollout shows: the pods, their events and the servers' last log lines."""
    return "\n".join(
        kubectl(env, "-n", ns, *args, check=False)
        for args in (
            ("get", "pods", "-o", "wide"),
            ("describe", "pods", "-l", CONTROL_PLANE_PODS),
            ("logs", "-l", CONTROL_PLANE_PODS, "--tail=40", "--prefix"),
        )
    )


def test_control_plane_chart_then_agent_chart_serve_a_model(
    real_cluster, cluster_images, k8s_namespace, pods_database, pods_s3, s3_server, demo_package: Path
) -> None:
    env, images, ns = real_cluster, cluster_images, k8s_namespace
    store, endpoint = pods_s3
    started = time.monotonic()

    # the documented install: Secrets first, then the chart
    kubectl(env, "-n", ns, "create", "secret", "generic", "deckhand-database", f"--from-literal=url={pods_database}")
    kubectl(env, "-n", ns, "create", "secret", "generic", "deckhand-s3",
            f"--from-literal=AWS_ACCESS_KEY_ID={s3_server.access_key}",
            f"--from-literal=AWS_SECRET_ACCESS_KEY={s3_server.secret_key}")  # fmt: skip
    repo, tag = images.control_plane.rsplit(":", 1)
    values = {
        "image.repository": repo,
        "image.tag": tag,
        "database.existingSecret": "deckhand-database",
        "artifactStore.url": store,
        "artifactStore.s3.endpointUrl": endpoint,
        "artifactStore.s3.region": s3_server.region,
        "artifactStore.s3.credentialsSecret": "deckhand-s3",
        "ingress.enabled": "true",
        "ingress.className": "traefik",
    }
    proc = helm(env, "upgrade", "--install", RELEASE, str(CHART), "--namespace", ns, "--set", "replicas=2",
                *helm_set_args(values))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "deckhand control plane" in proc.stdout and "2 replica(s)" in proc.stdout  # NOTES.txt
    rollout = kubectl(env, "-n", ns, "rollout", "status", f"deployment/{FULLNAME}", "--timeout=240s",
                      check=False, timeout=260)  # fmt: skip
    assert "successfully rolled out" in rollout, diagnose(env, ns)
    pods = control_plane_pods(env, ns)
    assert len(pods) == 2 and all(ready for _, _, ready in pods), pods
    ready_s = time.monotonic() - started
    print(f"\nhelm install -> 2 control-plane replicas ready in {ready_s:.1f} s")

    # the admin token, read as NOTES.txt says; printed nowhere
    secret = kubectl(env, "-n", ns, "get", "secret", f"{FULLNAME}-admin-token", "-o", "jsonpath={.data.token}")
    token = base64.b64decode(secret).decode()
    assert token.startswith("dh_") and token not in proc.stdout + proc.stderr
    logs = kubectl(env, "-n", ns, "logs", "-l", CONTROL_PLANE_PODS, "--tail=-1", "--prefix")
    assert "created admin token" in logs and token not in logs
    assert pods_database.split("@")[0].split(":")[-1] not in logs  # nor the database password

    # the API through the Ingress, on PostgreSQL
    from deckhand.client.control_plane import ControlPlaneClient

    client = ControlPlaneClient(f"http://{env.ingress_http}", token)
    try:
        health = wait_for("the control plane through the Ingress", lambda: client.health(), timeout=60)
        assert health["database"] == "postgresql"
        package = client.upload_package(demo_package)["id"]
        # the package is in the bucket, and either replica serves it (pods are reachable from here)
        bucket, prefix = store.removeprefix("s3://").split("/", 1)
        keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert any(k.startswith(prefix + "/") and package in k for k in keys), keys
        expected = demo_package.read_bytes()
        for name, ip, _ in pods:
            resp = httpx.get(f"http://{ip}:8000/api/v1/model-packages/{package}/artifact",
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
            assert resp.status_code == 200 and resp.content == expected, f"{name}: {resp.status_code}"

        # the agent chart, pointed at the control plane's Service
        cluster_ip = kubectl(env, "-n", ns, "get", "service", FULLNAME, "-o", "jsonpath={.spec.clusterIP}")
        environment, _, agent_ready_s = install_agent(
            env, images, client, f"http://{cluster_ip}:8000", ns, f"cp-chart-{ns}"
        )  # fmt: skip
        print(f"agent chart installed and reporting in {agent_ready_s:.1f} s")

        t0 = time.monotonic()
        dep = client.create_deployment("iris", environment["id"], package)
        ready = wait_ready(client, dep["id"], timeout=600)
        print(f"deployment ready (Kaniko build through the Service) in {time.monotonic() - t0:.1f} s")
        assert ready["predictionUrl"] == f"http://{env.ingress_http}/deployments/{dep['id']}/predictions"
        resp = predict(ready["predictionUrl"])
        assert resp.status_code == 200, resp.text
        assert resp.json()["data"][0]["prediction"] is not None
        print(f"control-plane chart to a prediction in {time.monotonic() - started:.1f} s")
    finally:
        client.close()

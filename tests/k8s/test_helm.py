"""Helm, built for the environment, installs a chart into the test cluster."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: smoke\nversion: 0.1.0\n",
    "values.yaml": 'image: ""\nreplicas: 1\n',
    "templates/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
      - name: echo
        image: {{ .Values.image }}
        readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 2}
""",
}


def test_helm_installs_a_chart(k8s_env, k8s_namespace, tmp_path: Path) -> None:
    for name, text in CHART.items():
        (tmp_path / "smoke" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "smoke" / name).write_text(text)
    helm = [k8s_env.helm, "--kubeconfig", k8s_env.kubeconfig, "--namespace", k8s_namespace]
    subprocess.run(
        [*helm, "install", "smoke", str(tmp_path / "smoke"), "--set", f"image={k8s_env.echo_image}",
         "--wait", "--timeout", "3m"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    releases = json.loads(subprocess.run([*helm, "list", "-o", "json"], check=True, capture_output=True).stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("smoke", "deployed")]

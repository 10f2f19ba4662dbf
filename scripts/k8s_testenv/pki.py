"""Certificates and kubeconfigs for the test cluster, made with the openssl CLI.

One CA signs everything. Identities:
- ``apiserver``: serving certificate (loopback, the pod-bridge gateway, the
  ``kubernetes`` Service IP and names);
- ``admin``: ``system:masters``, used by kubectl, helm, the tests, controller-manager,
  scheduler, kube-proxy, the ingress controller and the apiserver towards the kubelet;
- ``kubelet``: ``system:node:<node>`` in ``system:nodes`` (the Node authorizer's form);
- ``kubelet-serving``: the kubelet's HTTPS endpoint;
- ``sa.key``/``sa.pub``: service-account token signing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

CA_SUBJECT = "/CN=deckhand-k8s-ca"


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _leaf(pki: Path, name: str, subject: str, sans: list[str], usage: str) -> None:
    ext = pki / f"{name}.ext"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment"]
    lines.append(f"extendedKeyUsage={usage}")
    if sans:
        lines.append("subjectAltName=" + ",".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
        "-out", f"{name}.csr", "-subj", subject, cwd=pki,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", ext.name,
        "-out", f"{name}.crt", cwd=pki,
    )  # fmt: skip


def make_pki(pki: Path, *, node_name: str, node_ip: str, service_ip: str) -> None:
    """Create every key and certificate under ``pki`` (idempotent: skips if present)."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "complete").exists():
        return
    _openssl(
        "req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", "ca.key",
        "-out", "ca.crt", "-days", "3650", "-subj", CA_SUBJECT,
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", cwd=pki,
    )  # fmt: skip
    names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local"]  # fmt: skip
    api_sans = [f"DNS:{n}" for n in names] + [f"IP:{ip}" for ip in ("127.0.0.1", node_ip, service_ip)]
    _leaf(pki, "apiserver", "/CN=kube-apiserver", api_sans, "serverAuth")
    _leaf(pki, "admin", "/O=system:masters/CN=deckhand-admin", [], "clientAuth")
    _leaf(pki, "kubelet", f"/O=system:nodes/CN=system:node:{node_name}", [], "clientAuth")
    _leaf(pki, "kubelet-serving", f"/CN={node_name}", [f"IP:{node_ip}", f"DNS:{node_name}"], "serverAuth")
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    (pki / "complete").write_text("ok\n")


def kubeconfig(path: Path, *, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    """Write a kubeconfig (context ``deckhand``) that references the PEM files by path."""
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: deckhand
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: deckhand
  context:
    cluster: deckhand
    user: {user}
current-context: deckhand
"""
    )

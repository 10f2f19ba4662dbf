"""pytest fixtures for tests that need the Kubernetes test environment.

Use from a conftest.py (``tests/k8s/conftest.py`` does)::

    from k8s_testenv.pytest_plugin import k8s_env, k8s_api, k8s_namespace  # noqa: F401

``k8s_env`` (session) reuses an environment already started with
``scripts/k8s-testenv up`` (and leaves it running), otherwise starts one and stops it
at the end of the session. ``DECKHAND_K8S_NODE=real|kwok|auto`` picks the node kind
(default auto: real when this machine allows it). It skips, with the reason, only when
the environment says it cannot run here.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator

import pytest

from . import build
from .cluster import Cluster, EnvError, EnvInfo

NEEDED = (build.KUBERNETES, build.ETCD, build.TRAEFIK, build.HELM)


def cannot_run_reasons() -> list[str]:
    """Why the environment cannot run on this machine at all (then tests skip)."""
    reasons = []
    if not shutil.which("kubectl"):
        reasons.append("kubectl not found (Debian package kubectl)")
    if not shutil.which("docker-registry"):
        reasons.append("docker-registry not found (run scripts/setup/50-k8s-testenv.sh)")
    missing = [t.name for t in NEEDED if not t.complete]
    if missing:
        try:
            build.find_go()
        except build.BuildError:
            reasons.append(f"tools not built ({', '.join(missing)}) and no Go toolchain to build them")
    return reasons


@pytest.fixture(scope="session")
def k8s_env() -> Iterator[EnvInfo]:
    cluster = Cluster()
    running = EnvInfo.load(cluster.state)
    if running and cluster.procs.alive("kube-apiserver"):
        yield running  # started by hand: leave it running
        return
    reasons = cannot_run_reasons()
    if reasons:
        pytest.skip("Kubernetes test environment cannot run here: " + "; ".join(reasons))
    missing = [t.name for t in NEEDED if not t.complete]
    if missing:  # a cold build takes far longer than a test may: it belongs to the setup stage
        pytest.fail(f"tools not built: {', '.join(missing)}; run scripts/k8s-testenv build (scripts/test does)")
    node = os.environ.get("DECKHAND_K8S_NODE", "auto")
    try:
        info = cluster.up(node=node)
    except EnvError as exc:
        # A safety net, said out loud with the whole error (the component's exit status and
        # output). The causes seen so far are fixed: a just-forked child taken for exited
        # (procs.Procs) and two components given the same port (cluster.free_ports).
        warnings.warn(f"k8s-testenv up failed, retrying once after down: {exc}", stacklevel=1)
        cluster.down()
        info = cluster.up(node=node)
    try:
        yield info
    finally:
        if os.environ.get("DECKHAND_K8S_KEEP") != "1":
            cluster.down()


@pytest.fixture(scope="session")
def k8s_api(k8s_env: EnvInfo):
    """A ``kubernetes.client.ApiClient`` for the cluster admin."""
    kubernetes = pytest.importorskip("kubernetes")
    return kubernetes.config.new_client_from_config(config_file=k8s_env.kubeconfig)


@pytest.fixture
def k8s_namespace(k8s_api) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(k8s_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")

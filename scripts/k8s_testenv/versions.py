"""Pinned versions of every component of the test environment (one place for each).

Kubernetes 1.33 (not 1.30): kubectl from Debian is 1.32, inside the supported +-1 skew,
and the Go module proxy here serves every k8s.io staging module at v0.33.13 (1.31 and
1.32 lack some, e.g. k8s.io/cri-client). Kubernetes 1.33 expects etcd 3.5 while Debian
ships 3.4.23, so etcd is built from go.etcd.io/etcd/server/v3 at the very version
k8s.io/kubernetes v1.33.13 itself requires (v3.5.21).
"""

from __future__ import annotations

KUBERNETES = "v1.33.13"
ETCD = "v3.5.21"
HELM = "v3.18.6"
KWOK = "v0.7.0"
TRAEFIK = "v3.6.12"
# Kaniko (image builds inside the cluster): the last release; its go.mod says go 1.22,
# so it builds with the Go here and needs no replace directives.
KANIKO = "v1.23.2"
# SeaweedFS (an S3-compatible object store for the control plane's `--artifact-store s3://`
# tests, tests/s3_fixtures.py): the Go module proxy serves no tagged release of it, only
# this pseudo-version; its go.mod says go 1.26.6.
SEAWEEDFS = "v0.0.0-20261109003541-7506e5f91cd6"

#!/usr/bin/env bash
# The Kubernetes test environment (scripts/k8s-testenv, tests/k8s): Debian packages for
# a real node and the registry, then the Go-built tools (kube-apiserver & co., etcd 3.5,
# Traefik, Helm, kwok, Kaniko) cached in $DECKHAND_CACHE_DIR/tools. Quick when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/setup/lib.sh

packages=(
  containerd                   # container runtime of the real node
  runc
  containernetworking-plugins  # CNI: bridge, host-local, portmap, firewall, loopback
  conntrack                    # kube-proxy
  iptables
  iproute2
  openssl                      # cluster certificates
  docker-registry              # the local image registry (distribution 2.8)
)
command -v kubectl >/dev/null || packages+=(kubectl)
install_debian_packages "${packages[@]}"
# The packages' own services are not ours: the environment runs its own instances,
# bound to 127.0.0.1. Stop them where an init system started them anyway.
if [ -d /run/systemd/system ]; then
  systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
fi

export PATH="$PATH:/usr/local/go/bin"
python3 scripts/k8s-testenv build kubernetes etcd traefik helm kwok kaniko

#!/usr/bin/env bash
# The Kubernetes test environment (scripts/k8s-testenv, tests/k8s): Debian packages for
# a real node and the registry, then the Go-built tools (kube-apiserver & co., etcd 3.5,
# Traefik, Helm, kwok, Kaniko) cached in $DECKHAND_CACHE_DIR/tools. Quick when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."

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
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root, or install them yourself)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The packages' own services are not ours: the environment runs its own instances,
  # bound to 127.0.0.1. Stop them where an init system started them.
  if [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  fi
fi

export PATH="$PATH:/usr/local/go/bin"
python3 scripts/k8s-testenv build kubernetes etcd traefik helm kwok kaniko

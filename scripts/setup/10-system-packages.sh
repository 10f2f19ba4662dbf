#!/usr/bin/env bash
# Debian packages the tests use. Installs only what is missing, so a rerun is quick.
#   postgresql  control plane on PostgreSQL (tests start their own cluster)
#   haproxy     the load balancer in front of control-plane replicas (bench/control_plane_scale.py)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
install_debian_packages postgresql haproxy

#!/usr/bin/env bash
# Debian packages the tests use. Installs only what is missing, so a rerun is quick.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
install_debian_packages \
  postgresql \
  haproxy
# postgresql: control plane on PostgreSQL (tests start their own cluster)
# haproxy: the reverse proxy in front of control-plane replicas (replica fault test, scale bench)

#!/usr/bin/env bash
# What the Docker prediction environment and its images need: Debian's Docker engine
# (docker.io, run by scripts/docker-engine on its own socket), debootstrap for the
# locally made base image, make, iproute2/iptables/curl for the engine script, Debian's
# python3-venv for the host-built wheelhouse, and Go for the Traefik build (Debian's
# golang-go only when no go is on PATH; GOTOOLCHAIN=auto then fetches the version
# Traefik asks for from the Go module proxy). Installs only what is missing.
set -euo pipefail
packages=(docker.io debootstrap make iproute2 iptables curl python3-venv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v go >/dev/null || missing+=(golang-go)
if [ ${#missing[@]} -eq 0 ]; then
  echo "docker packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps the package from starting the system docker service: deckhand
# runs its own dockerd (scripts/docker-engine) and must not touch another daemon.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"

#!/usr/bin/env bash
# What the Docker prediction environment and its images need: Debian's Docker engine
# (docker.io, run by scripts/docker-engine on its own socket), debootstrap for the
# locally made base image, make, iproute2/iptables/curl for the engine script, Debian's
# python3-venv for the host-built wheelhouse, and Go for the Traefik build (Debian's
# golang-go only when no go is on PATH; GOTOOLCHAIN=auto then fetches the version
# Traefik asks for from the Go module proxy). The package's own docker service is never
# started: deckhand runs its own dockerd and must not touch another daemon.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
packages=(docker.io debootstrap make iproute2 iptables curl python3-venv)
command -v go >/dev/null || packages+=(golang-go)
install_debian_packages "${packages[@]}"

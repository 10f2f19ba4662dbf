#!/usr/bin/env bash
# Builds deckhand's container images (make -C images all) on deckhand's own Docker engine,
# before the tests, so a cold build (debootstrap, wheels, Traefik's Go build) does not run
# inside a test's timeout. Everything is cached under $DECKHAND_CACHE_DIR and in the
# engine's data root: on a machine that built them before this takes seconds.
#
# The engine: if it already answers, it is used and left running. Otherwise this step
# starts it for the build and stops it again; the test session then starts and stops it
# itself (tests/docker_fixtures.py), so dockerd never outlives the run that started it.
# DECKHAND_SKIP_DOCKER_IMAGES=1 skips the step (the docker-marked tests then build what
# they need, or skip without root).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${DECKHAND_SKIP_DOCKER_IMAGES:-0}" = 1 ]; then
  echo "docker images: skipped (DECKHAND_SKIP_DOCKER_IMAGES=1)"
  exit 0
fi
if ! command -v dockerd >/dev/null; then
  echo "docker images: dockerd not installed (scripts/setup/40-docker.sh), skipped" >&2
  exit 0
fi
started=0
if ! scripts/docker-engine status >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "docker images: the engine is not running and starting it needs root; skipped" >&2
    exit 0
  fi
  scripts/docker-engine start >/dev/null
  started=1
fi
stop_engine() { [ "$started" = 1 ] && scripts/docker-engine stop || true; }
trap stop_engine EXIT
eval "$(scripts/docker-engine env)"
make -s -C images all
make -s -C images list

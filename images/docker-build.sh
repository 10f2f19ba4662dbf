#!/usr/bin/env bash
# Builds one deckhand image quietly: the build log goes to a file, shown only on failure.
#
#   images/docker-build.sh NAME CONTEXT_DIR [docker build flags...]
#
# Tags deckhand-NAME:$VERSION. Uses the classic builder with --network host (see the
# Makefile for why).
set -euo pipefail
name="${1:?usage: docker-build.sh NAME CONTEXT_DIR [flags...]}"
context="${2:?usage: docker-build.sh NAME CONTEXT_DIR [flags...]}"
shift 2
: "${VERSION:?VERSION must be set (the Makefile sets it)}"
docker="${DOCKER:-docker}"
logs="${DECKHAND_CACHE_DIR:-$HOME/.cache/deckhand}/images/logs"
mkdir -p "$logs"
log="$logs/$name.log"
if ! DOCKER_BUILDKIT=0 "$docker" build --network host --build-arg "VERSION=$VERSION" \
    -t "deckhand-$name:$VERSION" "$@" "$context" >"$log" 2>&1; then
  grep -v -e '^DEPRECATED: The legacy builder' -e 'BuildKit is currently disabled' \
    -e 'environment-variable\.$' "$log" | tail -n 40 >&2
  echo "images: building deckhand-$name:$VERSION failed (full log: $log)" >&2
  exit 1
fi

#!/usr/bin/env bash
# Builds the Traefik binary for the deckhand-proxy image from the Go module proxy.
#
#   images/proxy/build-traefik.sh OUT_DIR
#
# Traefik's go.mod carries replace directives, so `go install module@version` refuses
# it; instead the module source is downloaded from the Go module proxy and built as
# the main module. Everything Go writes (module cache, build cache, the binary) lives
# under $DECKHAND_CACHE_DIR/go (shared with scripts/k8s-testenv's Go builds), so a
# rerun on the same machine only copies the binary.
# v3.6.x is used because v3.7 needs a nested module (dynamic/ext) that the module
# proxy does not serve, and the proxy does not serve traefik/v2 at all.
set -euo pipefail

TRAEFIK_VERSION="${TRAEFIK_VERSION:-v3.6.12}"
out_dir="${1:?usage: build-traefik.sh OUT_DIR}"
cache="${DECKHAND_CACHE_DIR:-$HOME/.cache/deckhand}/go"
bin="$cache/bin/traefik-$TRAEFIK_VERSION"
# The Kubernetes test environment (scripts/k8s-testenv) builds the same Traefik, with
# the same flags and caches, into tools/; reuse its binary rather than build twice.
k8s_tool="${DECKHAND_CACHE_DIR:-$HOME/.cache/deckhand}/tools/traefik-$TRAEFIK_VERSION"
if [ ! -x "$bin" ] && [ -f "$k8s_tool/.complete" ] && [ -x "$k8s_tool/traefik" ]; then
  mkdir -p "$cache/bin"
  cp "$k8s_tool/traefik" "$bin.tmp" && mv "$bin.tmp" "$bin"
  echo "build-traefik: reused $k8s_tool/traefik"
fi

if ! command -v go >/dev/null; then
  echo "build-traefik: 'go' not found on PATH (scripts/setup/40-docker.sh installs golang-go)" >&2
  exit 1
fi

if [ ! -x "$bin" ]; then
  export GOMODCACHE="$cache/mod" GOCACHE="$cache/build" GOFLAGS="-modcacherw -buildvcs=false"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0
  mkdir -p "$cache/bin" "$cache/src"
  echo "build-traefik: downloading github.com/traefik/traefik/v3@$TRAEFIK_VERSION"
  mod_dir=$(cd "$cache" && go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$mod_dir" ] || [ ! -f "$mod_dir/go.mod" ]; then
    echo "build-traefik: could not download traefik $TRAEFIK_VERSION from the Go module proxy" >&2
    exit 1
  fi
  src="$cache/src/traefik-$TRAEFIK_VERSION"
  rm -rf "$src"
  cp -r "$mod_dir" "$src"
  chmod -R u+w "$src"
  echo "build-traefik: go build ./cmd/traefik (cold: several minutes on 2 cores)"
  start=$SECONDS
  (cd "$src" && go build -trimpath -o "$bin.tmp" \
    -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    ./cmd/traefik)
  mv "$bin.tmp" "$bin"
  rm -rf "$src"
  echo "build-traefik: built $bin in $((SECONDS - start)) s"
fi

mkdir -p "$out_dir"
cp "$bin" "$out_dir/traefik"
echo "build-traefik: $out_dir/traefik ($TRAEFIK_VERSION)"

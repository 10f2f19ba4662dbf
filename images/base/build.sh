#!/usr/bin/env bash
# Builds deckhand-base:<version>, a Debian bookworm minbase with python3 and venv,
# made locally (debootstrap + docker import) because no registry can be pulled from.
#
#   images/base/build.sh VERSION
#
# The root filesystem is cached as a tarball under $DECKHAND_CACHE_DIR/images/, keyed
# by everything that shapes it (suite, packages, mirror, this script), so a rebuild on
# the same machine is a `docker import` of the tarball (seconds), and nothing at all
# when the engine already holds the image with the same key.
set -euo pipefail

version="${1:?usage: build.sh VERSION}"
image="deckhand-base:$version"
suite=bookworm
packages=python3,python3-venv,ca-certificates
cache="${DECKHAND_CACHE_DIR:-$HOME/.cache/deckhand}/images"
docker="${DOCKER:-docker}"

die() { echo "base: $*" >&2; exit 1; }

# The Debian mirror this machine uses (debian.sources or a classic sources.list).
mirror=$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*debian\)[[:space:]]*$/\1/p' \
  /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1 || true)
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^deb[[:space:]]\+\(http[^[:space:]]*debian\)[[:space:]]\+.*/\1/p' \
    /etc/apt/sources.list 2>/dev/null | head -n 1 || true)
fi
mirror="${DECKHAND_DEBIAN_MIRROR:-${mirror:-http://deb.debian.org/debian}}"

key=$( { echo "$suite $packages $mirror"; cat "$0"; } | sha256sum | cut -c1-12)
tarball="$cache/debian-$suite-minbase-$key.tar"

current=$("$docker" image inspect -f '{{index .Config.Labels "org.deckhand.base-key"}}' "$image" 2>/dev/null || true)
if [ "$current" = "$key" ]; then
  echo "base: $image is up to date (key $key)"
  exit 0
fi

if [ ! -f "$tarball" ]; then
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap not found: run scripts/setup/40-docker.sh"
  mkdir -p "$cache"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "base: debootstrap --variant=minbase $suite from $mirror (about a minute)"
  start=$SECONDS
  if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
      >"$cache/debootstrap.log" 2>&1; then
    tail -n 20 "$cache/debootstrap.log" >&2
    die "debootstrap failed (full log: $cache/debootstrap.log)"
  fi
  # Sources for images that apt-get install on top (rabbitmq), then slim it down.
  security="${mirror%/debian}/debian-security"
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
SOURCES
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/tmp/* "$rootfs"/dev/*
  # Keep docker builds quiet and small: no recommends, no interactive prompts.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/90deckhand"
  tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  # Older tarballs (another key) are no longer useful.
  find "$cache" -maxdepth 1 -name "debian-$suite-minbase-*.tar" ! -name "$(basename "$tarball")" -delete
  echo "base: root filesystem cached as $tarball in $((SECONDS - start)) s"
fi

echo "base: docker import $tarball as $image"
"$docker" import \
  --change "LABEL org.deckhand.base-key=$key org.opencontainers.image.version=$version org.opencontainers.image.title=deckhand-base" \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  "$tarball" "$image" >/dev/null
echo "base: $image imported"

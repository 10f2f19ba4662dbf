#!/usr/bin/env bash
# Builds deckhand-python-deps:<version> (when its inputs changed) and deckhand-python:<version>.
#
#   images/python/build.sh REPO_ROOT CONTEXTS_DIR
#
# Every wheel is built on the host with Debian's python3, the interpreter the images run,
# so each one fits it; nothing is downloaded inside `docker build`.
#  1. The deckhand wheel (byte-identical for unchanged code: fixed SOURCE_DATE_EPOCH).
#  2. A key over what shapes the dependency venv: the wheel's Requires-Dist, the extras,
#     Dockerfile.deps and the base image id. If deckhand-python-deps carries that key,
#     steps 3-4 are skipped (a code change costs seconds).
#  3. Dependency wheels, pooled in $DECKHAND_CACHE_DIR/wheelhouse: resolved offline from
#     the pool when it can, else once against the package index.
#  4. deckhand-python-deps (base + venv with the dependencies + the deckhand user).
#  5. deckhand-python (deps + the deckhand wheel), from a context of a few hundred KB.
# DECKHAND_IMAGE_EXTRAS picks the optional dependency groups; DECKHAND_IMAGE_REFRESH=1
# resolves against the index even when the pool would do (newer versions).
set -euo pipefail

root="${1:?usage: build.sh REPO_ROOT CONTEXTS_DIR}"
contexts="${2:?usage: build.sh REPO_ROOT CONTEXTS_DIR}"
: "${VERSION:?VERSION must be set (the Makefile sets it)}"
extras="${DECKHAND_IMAGE_EXTRAS:-rabbitmq,docker,kubernetes,postgres,onnx,s3}"
cache="${DECKHAND_CACHE_DIR:-$HOME/.cache/deckhand}"
wheelhouse="$cache/wheelhouse"
host_python="${DECKHAND_IMAGE_HOST_PYTHON:-/usr/bin/python3}"
venv="$cache/images/host-venv"
docker="${DOCKER:-docker}"
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/../docker-build.sh"
deps_ctx="$contexts/python-deps"
app_ctx="$contexts/python"

die() { echo "python: $*" >&2; exit 1; }

[ -x "$host_python" ] || die "$host_python not found: apt-get install python3 python3-venv"
pyver=$("$host_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = "3.11" ] || echo "python: warning: host python is $pyver, the images run 3.11" >&2

# A venv with a recent pip/setuptools/wheel, made once from the host's Debian python.
if [ ! -x "$venv/bin/pip" ] || ! "$venv/bin/python" -c 'import setuptools, wheel' 2>/dev/null; then
  rm -rf "$venv"
  "$host_python" -m venv "$venv" || die "could not make a venv with $host_python (apt-get install python3-venv)"
  "$venv/bin/pip" install -q --disable-pip-version-check -U pip 'setuptools>=68' wheel \
    || die "could not install pip/setuptools/wheel into $venv"
fi
pip=("$venv/bin/pip" --disable-pip-version-check)

# 1. The deckhand wheel.
rm -rf "$app_ctx" && mkdir -p "$app_ctx/app"
if ! SOURCE_DATE_EPOCH=315532800 "${pip[@]}" wheel -q --no-deps --no-build-isolation \
    -w "$app_ctx/app" "$root" >"$app_ctx/wheel.log" 2>&1; then
  cat "$app_ctx/wheel.log" >&2
  die "building the deckhand wheel from $root failed"
fi
rm -f "$app_ctx/wheel.log"
app_wheel=$(ls "$app_ctx"/app/deckhand-*.whl)

# 2. The dependency key.
requires=$("$venv/bin/python" - "$app_wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    for line in whl.read(meta).decode().splitlines():
        if line.startswith(("Requires-Dist:", "Provides-Extra:")):
            print(line)
PY
)
base_id=$("$docker" image inspect -f '{{.Id}}' "deckhand-base:$VERSION")
key=$(printf '%s\n' "$extras" "$requires" "$base_id" "$(cat "$here/Dockerfile.deps")" | sha256sum | cut -c1-16)
current=$("$docker" image inspect -f '{{index .Config.Labels "org.deckhand.deps-key"}}' \
  "deckhand-python-deps:$VERSION" 2>/dev/null || true)

if [ "$current" != "$key" ] || [ "${DECKHAND_IMAGE_REFRESH:-0}" = 1 ]; then
  # 3. Dependency wheels.
  requirement="deckhand[$extras] @ file://$app_wheel"
  mkdir -p "$wheelhouse"
  # pip takes a wheel of the same file name already in the -w directory as the one asked
  # for: a deckhand wheel left in the pool from an earlier build would stand in for this
  # one, with its old dependencies. Only dependencies belong in the pool.
  rm -f "$wheelhouse"/deckhand-*.whl
  rm -rf "$deps_ctx" && mkdir -p "$deps_ctx/deps"
  if [ "${DECKHAND_IMAGE_REFRESH:-0}" = 1 ] || ! "${pip[@]}" wheel -q --no-index \
      --find-links "$wheelhouse" -w "$deps_ctx/deps" "$requirement" >/dev/null 2>&1; then
    echo "python: resolving dependencies against the package index"
    "${pip[@]}" wheel -q --find-links "$wheelhouse" -w "$wheelhouse" "$requirement" \
      || die "pip wheel of the dependencies failed"
    rm -f "$wheelhouse"/deckhand-*.whl
    rm -rf "$deps_ctx/deps" && mkdir -p "$deps_ctx/deps"
    "${pip[@]}" wheel -q --no-index --find-links "$wheelhouse" -w "$deps_ctx/deps" "$requirement" \
      || die "offline resolve from $wheelhouse failed right after filling it"
  fi
  rm -f "$deps_ctx"/deps/deckhand-*.whl
  cp "$here/Dockerfile.deps" "$deps_ctx/Dockerfile"
  echo "python: $(ls "$deps_ctx/deps" | wc -l) dependency wheels; building deckhand-python-deps:$VERSION"
  # 4. The dependency image.
  "$build" python-deps "$deps_ctx" --build-arg "DEPS_KEY=$key"
else
  echo "python: deckhand-python-deps:$VERSION is up to date (key $key)"
fi

# 5. The deckhand image.
cp "$here/Dockerfile" "$app_ctx/Dockerfile"
"$build" python "$app_ctx"

#!/usr/bin/env bash
# Gathers the deckhand-kaniko build context: the executor built (once, cached) by
# scripts/k8s-testenv from the Go module proxy, the host's CA bundle and nsswitch.conf.
#
#   images/kaniko/build-context.sh REPO_ROOT OUT_DIR
set -euo pipefail
root="${1:?usage: build-context.sh REPO_ROOT OUT_DIR}"
out="${2:?usage: build-context.sh REPO_ROOT OUT_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
export PATH="$PATH:/usr/local/go/bin"
tool_dir=$(cd "$root/scripts" && python3 -c 'from k8s_testenv import build; print(build.build(build.KANIKO))')
[ -x "$tool_dir/executor" ] || { echo "kaniko: no executor in $tool_dir (see its build.log)" >&2; exit 1; }
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "kaniko: $ca missing (apt-get install ca-certificates)" >&2; exit 1; }
rm -rf "$out" && mkdir -p "$out"
cp "$tool_dir/executor" "$out/executor"
cp "$ca" "$out/ca-certificates.crt"
echo "hosts: files dns" > "$out/nsswitch.conf"
cp "$here/Dockerfile" "$out/Dockerfile"

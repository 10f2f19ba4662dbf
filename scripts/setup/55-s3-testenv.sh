#!/usr/bin/env bash
# The S3-compatible object store of the `s3` tests (tests/s3_fixtures.py): SeaweedFS's
# `weed`, built from the Go module proxy into $DECKHAND_CACHE_DIR/tools like the Kubernetes
# tools (scripts/k8s_testenv/build.py). About 6 minutes the first time; cached after.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
start=$SECONDS
python3 scripts/k8s-testenv build seaweedfs
echo "seaweedfs ready in $((SECONDS - start)) s"

#!/usr/bin/env bash
# Prediction server (issue 8): wrk drives bench/serving and its smoke test.
# Python packages (onnxruntime, skl2onnx, mlflow-skinny) come with the test extra.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  echo "wrk present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "wrk is missing (apt-get install wrk as root); the serving bench smoke test will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 || {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends wrk
}
command -v wrk

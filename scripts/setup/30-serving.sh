#!/usr/bin/env bash
# Prediction server: wrk drives bench/serving and its smoke test.
# Python packages (onnxruntime, skl2onnx, mlflow-skinny) come with the test extra.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
install_debian_packages wrk

#!/usr/bin/env bash
# The reference runner: DataRobot's datarobot-bosun (the runner the seeds document), from
# PyPI into its own venv, for the compat tests (tests/plugin/test_compat.py) and
# bench/plugin_actions.py. Never into deckhand's environment: its `bosun` package would
# shadow deckhand's compatibility one. Cached under $DECKHAND_CACHE_DIR/bosun-reference;
# a rerun that finds the right version installed takes well under a second.
# Its dependencies (datarobot-mlops-connected-client, pandas, numpy, ...) come with it;
# no extra is installed, so its docker/kubernetes plugins are not runnable there.
set -euo pipefail
VERSION=11.2.62  # keep in step with tests/plugin/reference_runner.py
CACHE="${DECKHAND_CACHE_DIR:-$HOME/.cache/deckhand}"
VENV="${DECKHAND_BOSUN_REFERENCE:-$CACHE/bosun-reference}"
STAMP="$VENV/.installed-datarobot-bosun-$VERSION"
start=$SECONDS
if [ -f "$STAMP" ] && [ -x "$VENV/bin/bosun-plugin-runner" ]; then
  echo "bosun reference $VERSION: present in $VENV"
  exit 0
fi
# The stamp is written last: an interrupted install has none and is redone from scratch.
rm -rf "$VENV"
python -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "datarobot-bosun==$VERSION"
env -u PYTHONPATH "$VENV/bin/bosun-plugin-runner" --list-actions >/dev/null  # it runs
touch "$STAMP"
echo "bosun reference $VERSION: installed in $VENV in $((SECONDS - start)) s"

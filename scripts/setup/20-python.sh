#!/usr/bin/env bash
# The deckhand package itself, editable, with the test extras.
set -euo pipefail
python -m pip install -q --disable-pip-version-check -e '.[test]'

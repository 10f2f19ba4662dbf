#!/usr/bin/env bash
# The deckhand package itself, editable, with the test extras; then its bytecode.
set -euo pipefail
python -m pip install -q --disable-pip-version-check -e '.[test]'
# An editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set (as on our
# machines) imports never write .pyc either: every runner subprocess would then compile
# its modules anew (~18 ms of each plugin action). compileall writes them regardless.
python -m compileall -q src

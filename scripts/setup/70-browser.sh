#!/usr/bin/env bash
# Headless Chromium for the web UI tests (tests/ui, marker `browser`): Debian's `chromium`
# package, driven by Playwright (pip `playwright`, in the `test` extra) with
# executable_path=/usr/bin/chromium. Playwright's own browser download is never used.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
install_debian_packages chromium
python -c "import playwright" 2>/dev/null || python -m pip install -q --disable-pip-version-check 'playwright>=1.40'

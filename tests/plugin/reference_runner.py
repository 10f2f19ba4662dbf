"""Where the reference runner (DataRobot's `datarobot-bosun`, the runner the seeds document)
lives once scripts/setup/25-bosun-reference.sh installed it into its own venv; shared by
the compat tests and bench/plugin_actions.py."""

from __future__ import annotations

import os
from pathlib import Path

# The version compared against; the set-up script installs exactly this one.
REFERENCE_VERSION = "11.2.62"
SETUP_SCRIPT = "scripts/setup/25-bosun-reference.sh"


def reference_venv() -> Path:
    """$DECKHAND_BOSUN_REFERENCE, else bosun-reference under $DECKHAND_CACHE_DIR (~/.cache/deckhand)."""
    explicit = os.environ.get("DECKHAND_BOSUN_REFERENCE")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("DECKHAND_CACHE_DIR") or str(Path.home() / ".cache" / "deckhand")
    return Path(cache) / "bosun-reference"


def reference_command() -> list[str] | None:
    """The reference's `bosun-plugin-runner` run by its venv's interpreter, or None when absent."""
    venv = reference_venv()
    python, script = venv / "bin" / "python", venv / "bin" / "bosun-plugin-runner"
    if not (python.exists() and script.exists()):
        return None
    return [str(python), str(script)]


def reference_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the reference: no PYTHONPATH, which would put deckhand's `bosun`
    package in front of the reference's own."""
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONPATH", None)
    return env


def missing_reason() -> str:
    return f"reference runner not installed at {reference_venv()}: run {SETUP_SCRIPT} to install it"

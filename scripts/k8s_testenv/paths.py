"""Where the environment keeps its cached tools and its per-run state."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Shared cache outside the checkout (CI reuses it across fresh clones)."""
    default = Path.home() / ".cache" / "deckhand"
    return Path(os.environ.get("DECKHAND_CACHE_DIR") or default)


def tools_dir() -> Path:
    return cache_dir() / "tools"


def go_dir() -> Path:
    return cache_dir() / "go"


def state_dir() -> Path:
    """Per-environment state: certificates, configs, data, logs (ignored by git)."""
    env = os.environ.get("DECKHAND_K8S_STATE_DIR")
    return Path(env) if env else REPO / "test-artifacts" / "k8s-testenv"

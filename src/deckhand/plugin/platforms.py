"""Prediction-environment platforms and the built-in plugin each one runs by default.

Defined once here, below everything that needs them: the control plane's API (which
platforms it accepts, which plugin a new environment gets), the agent (which plugin it runs
for an environment that names none) and the CLI import them.
"""

from __future__ import annotations

from typing import Literal, get_args

Platform = Literal["local", "filesystem", "test", "docker", "kubernetes", "custom"]
PLATFORMS: tuple[str, ...] = get_args(Platform)

# The plugin an environment runs when it names none; `custom` has no default.
DEFAULT_PLUGIN_BY_PLATFORM: dict[str, str] = {
    "local": "filesystem",
    "filesystem": "filesystem",
    "test": "test",
    "docker": "docker",
    "kubernetes": "kubernetes",
}

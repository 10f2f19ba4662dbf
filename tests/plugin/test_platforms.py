"""The platform -> plugin map: every platform but `custom` runs a built-in plugin."""

from __future__ import annotations

from deckhand.plugin.loader import list_plugins
from deckhand.plugin.platforms import DEFAULT_PLUGIN_BY_PLATFORM, PLATFORMS


def test_every_platform_but_custom_defaults_to_a_built_in_plugin():
    built_in = {p.name for p in list_plugins() if p.source == "built-in"}
    assert set(DEFAULT_PLUGIN_BY_PLATFORM) == set(PLATFORMS) - {"custom"}
    assert set(DEFAULT_PLUGIN_BY_PLATFORM.values()) <= built_in

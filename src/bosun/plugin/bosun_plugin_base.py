from deckhand.plugin.base import BosunPluginBase

__all__ = ["BosunPluginBase"]

"""deckhand: a self-hosted MLOps management agent.

Keep this module import-free: the plugin runner's start-up time depends on it.
"""

__version__ = "0.1.0"

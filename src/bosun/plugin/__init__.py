"""bosun.plugin.* import paths (thin re-exports of deckhand.plugin)."""

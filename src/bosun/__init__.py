"""Compatibility import paths for plugins written against the documented bosun SDK.
Everything here re-exports deckhand's classes; nothing is defined twice."""

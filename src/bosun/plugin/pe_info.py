from deckhand.plugin.pe_info import PEInfo

__all__ = ["PEInfo"]

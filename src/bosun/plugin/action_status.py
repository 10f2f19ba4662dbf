from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo

__all__ = ["ActionDataFields", "ActionStatus", "ActionStatusInfo"]

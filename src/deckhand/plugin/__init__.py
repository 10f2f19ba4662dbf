"""The plugin SDK: the documented bosun interface (BosunPluginBase, ActionStatus,
ActionStatusInfo, DeploymentInfo, PEInfo, constants) and the runner."""

from deckhand.plugin.action_status import ActionDataFields, ActionStatus, ActionStatusInfo, failing_status
from deckhand.plugin.base import BosunPluginBase
from deckhand.plugin.constants import BosunPluginActions, DeploymentState
from deckhand.plugin.deployment_info import DeploymentInfo
from deckhand.plugin.pe_info import PEInfo

__all__ = [
    "ActionDataFields",
    "ActionStatus",
    "ActionStatusInfo",
    "BosunPluginActions",
    "BosunPluginBase",
    "DeploymentInfo",
    "DeploymentState",
    "PEInfo",
    "failing_status",
]

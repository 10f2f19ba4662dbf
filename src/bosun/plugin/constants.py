from deckhand.plugin.constants import (
    BosunPluginActions,
    BosunPluginConfigConstants,
    DeploymentInfoConfigConstants,
    DeploymentState,
    PeInfoConfigConstants,
)

__all__ = [
    "BosunPluginActions",
    "BosunPluginConfigConstants",
    "DeploymentInfoConfigConstants",
    "DeploymentState",
    "PeInfoConfigConstants",
]

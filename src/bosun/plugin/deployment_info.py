from deckhand.plugin.deployment_info import DeploymentInfo

__all__ = ["DeploymentInfo"]

"""Names from the documented plugin protocol (bosun's documented interface): actions, config keys, states.

Each string is defined here once; everything else imports it.
"""

from __future__ import annotations


class BosunPluginActions:
    PLUGIN_START = "plugin_start"
    PLUGIN_STOP = "plugin_stop"
    DEPLOYMENT_START = "deployment_start"
    DEPLOYMENT_STOP = "deployment_stop"
    DEPLOYMENT_REPLACE_MODEL = "deployment_replace_model"
    DEPLOYMENT_STATUS = "deployment_status"
    PE_STATUS = "pe_status"
    DEPLOYMENT_LIST = "deployment_list"
    DEPLOYMENT_RELAUNCH = "deployment_relaunch"

    @staticmethod
    def all_actions() -> list[str]:
        return list(ACTIONS)

    @staticmethod
    def require_deployment_info() -> set[str]:
        return set(ACTIONS_WITH_DEPLOYMENT)


# The order `--list-actions` prints (bosun's documented list, then relaunch).
ACTIONS: tuple[str, ...] = (
    BosunPluginActions.PLUGIN_START,
    BosunPluginActions.PLUGIN_STOP,
    BosunPluginActions.DEPLOYMENT_START,
    BosunPluginActions.DEPLOYMENT_STOP,
    BosunPluginActions.DEPLOYMENT_REPLACE_MODEL,
    BosunPluginActions.DEPLOYMENT_STATUS,
    BosunPluginActions.PE_STATUS,
    BosunPluginActions.DEPLOYMENT_LIST,
    BosunPluginActions.DEPLOYMENT_RELAUNCH,
)

ACTIONS_WITH_DEPLOYMENT: frozenset[str] = frozenset(
    {
        BosunPluginActions.DEPLOYMENT_START,
        BosunPluginActions.DEPLOYMENT_STOP,
        BosunPluginActions.DEPLOYMENT_REPLACE_MODEL,
        BosunPluginActions.DEPLOYMENT_STATUS,
        BosunPluginActions.DEPLOYMENT_RELAUNCH,
    }
)

# Actions that need a model to be present (modelId and modelArtifact).
ACTIONS_WITH_MODEL: frozenset[str] = frozenset(
    {
        BosunPluginActions.DEPLOYMENT_START,
        BosunPluginActions.DEPLOYMENT_REPLACE_MODEL,
        BosunPluginActions.DEPLOYMENT_RELAUNCH,
    }
)


class BosunPluginConfigConstants:
    PLUGIN_CONFIG_KEY = "pluginConfig"
    MLOPS_URL_KEY = "MLOPS_BOSUN_MONITORING_URL"
    MLOPS_AGENT_VERIFY_SSL = "MLOPS_AGENT_VERIFY_SSL"
    MLOPS_API_TOKEN_ENV = "MLOPS_API_TOKEN"
    MLOPS_API_TOKEN_KEY = "mlopsApiToken"

    MLOPS_BOSUN_PRED_ENV_TYPE_KEY = "MLOPS_BOSUN_PRED_ENV_TYPE"
    MLOPS_BOSUN_PRED_ENV_PLATFORM_KEY = "MLOPS_BOSUN_PRED_ENV_PLATFORM"
    MLOPS_BOSUN_PRED_ENV_ID_KEY = "MLOPS_BOSUN_PRED_ENV_ID"
    MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING_KEY = "MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING"
    COMMAND_KEY = "command"
    MLOPS_URL = "mlopsUrl"


class PeInfoConfigConstants:
    PE_INFO_KEY = "peInfo"


class DeploymentInfoConfigConstants:
    DEPLOYMENT_INFO_KEY = "deploymentInfo"
    MODEL_FORMAT_MLPKG = "datarobot"
    MODEL_FORMAT_SCORING_CODE = "datarobotScoringCode"

    @staticmethod
    def model_artifact_suffix(model_format: str | None) -> str:
        return {
            DeploymentInfoConfigConstants.MODEL_FORMAT_MLPKG: "mlpkg",
            DeploymentInfoConfigConstants.MODEL_FORMAT_SCORING_CODE: "jar",
        }.get(model_format or "", "")


class DeploymentState:
    READY = "ready"
    STOPPED = "stopped"
    ERROR = "errored"
    LAUNCHING = "launching"
    REPLACING_MODEL = "replacingModel"
    SHUTTING_DOWN = "shuttingDown"
    UNKNOWN = "unknown"


DEPLOYMENT_STATES: frozenset[str] = frozenset(v for k, v in vars(DeploymentState).items() if not k.startswith("_"))

# States in which the plugin is still at work on a deployment: the agent plans nothing
# for it and looks again at its next pass.
TRANSIENT_STATES: frozenset[str] = frozenset(
    {DeploymentState.LAUNCHING, DeploymentState.REPLACING_MODEL, DeploymentState.SHUTTING_DOWN}
)

# Not a DeploymentState: the word the documented test plugin records for a running
# deployment, and lists in deployment_list. The agent reads it as ready.
RUNNING = "running"

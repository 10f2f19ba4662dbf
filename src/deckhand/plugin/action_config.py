"""The action config file (bosun's documented protocol): pluginConfig, peInfo and deploymentInfo sections.

`load_action_config` reads and validates one; `template` gives a ready-to-edit one for
`--gen-config`.
"""

from __future__ import annotations

import os

from deckhand.plugin.constants import (
    ACTIONS,
    ACTIONS_WITH_DEPLOYMENT,
    ACTIONS_WITH_MODEL,
    BosunPluginActions,
    BosunPluginConfigConstants,
    DeploymentInfoConfigConstants,
    PeInfoConfigConstants,
)
from deckhand.plugin.deployment_info import DeploymentInfo
from deckhand.plugin.errors import ConfigError, describe
from deckhand.plugin.pe_info import PEInfo
from deckhand.secrets import register_secret

TYPE_CHECKING = False  # importing typing slows every runner start; only type checkers need it
if TYPE_CHECKING:
    from typing import Any

PLUGIN_CONFIG = BosunPluginConfigConstants.PLUGIN_CONFIG_KEY
PE_INFO = PeInfoConfigConstants.PE_INFO_KEY
DEPLOYMENT_INFO = DeploymentInfoConfigConstants.DEPLOYMENT_INFO_KEY


class ActionConfig:
    """The parsed sections of one action config (a plain class: see TYPE_CHECKING above)."""

    __slots__ = ("plugin_config", "pe_info", "deployment_info")

    def __init__(
        self,
        plugin_config: dict[str, Any],
        pe_info: PEInfo | None,
        deployment_info: DeploymentInfo | None,
    ):
        self.plugin_config = plugin_config
        self.pe_info = pe_info
        self.deployment_info = deployment_info


# The strings a boolean config value is true for (any case, spaces around ignored).
TRUE_WORDS: tuple[str, ...] = ("1", "true", "yes", "on")


def truthy(value: Any) -> bool:
    """A boolean config value (pluginConfig, agent.yaml), which YAML, JSON or an environment
    variable may give as a string. A string is true only when it is one of TRUE_WORDS; any
    other string is false — "false", "off", "" and a word nobody expected such as "maybe"
    alike — so an unclear value never switches something on. Anything else goes by Python's
    truth (True, 1; not None, 0 or False). A caller that defaults to true checks for None
    (unset) before it calls this."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def load_mapping_file(path: str, *, what: str) -> dict[str, Any]:
    """A YAML (or JSON, which YAML reads too) file holding a mapping; empty file -> {}."""
    from deckhand import yamlio

    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(what, f"file {path} does not exist", "check the path") from None
    except IsADirectoryError:
        raise ConfigError(what, f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(what, f"cannot read {path}: {exc.strerror}") from None
    try:
        values = yamlio.loads(text)
    except Exception as exc:
        detail = str(exc).replace("\n", " ")
        raise ConfigError(what, f"{path} is not valid YAML/JSON: {detail}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(what, f"{path} must hold a mapping, found {describe(values)}")
    return values


def load_action_config(path: str | None, action: str) -> ActionConfig:
    if action not in ACTIONS:
        raise ConfigError("--action", f"unknown action {action!r}", f"use one of {', '.join(ACTIONS)}")
    raw = load_mapping_file(path, what="--config") if path else {}
    return parse_action_config(raw, action, source=path or "(no --config)")


def parse_action_config(raw: dict[str, Any], action: str, *, source: str = "") -> ActionConfig:
    plugin_config = raw.get(PLUGIN_CONFIG)
    if plugin_config is None:
        plugin_config = {}
    if not isinstance(plugin_config, dict):
        raise ConfigError(PLUGIN_CONFIG, f"expected a mapping, got {describe(plugin_config)}")
    plugin_config = dict(plugin_config)
    token = os.environ.get(BosunPluginConfigConstants.MLOPS_API_TOKEN_ENV)
    if token:
        plugin_config[BosunPluginConfigConstants.MLOPS_API_TOKEN_KEY] = token
    register_secret(plugin_config.get(BosunPluginConfigConstants.MLOPS_API_TOKEN_KEY))

    pe_raw = raw.get(PE_INFO)
    if action == BosunPluginActions.PE_STATUS and pe_raw is None:
        raise ConfigError(PE_INFO, f"section is missing in {source}", "pe_status needs peInfo with at least an id")
    pe_info = PEInfo(pe_raw) if pe_raw is not None else None

    di_raw = raw.get(DEPLOYMENT_INFO)
    deployment_info = None
    if action in ACTIONS_WITH_DEPLOYMENT:
        if di_raw is None:
            raise ConfigError(
                DEPLOYMENT_INFO,
                f"section is missing in {source}",
                f"{action} needs deploymentInfo with at least an id",
            )
        deployment_info = DeploymentInfo(di_raw)
        if action in ACTIONS_WITH_MODEL:
            deployment_info.require_model()
    elif di_raw is not None:
        deployment_info = DeploymentInfo(di_raw)
    return ActionConfig(plugin_config, pe_info, deployment_info)


def template(action: str, plugin: str | None = None) -> str:
    """A commented, ready-to-edit action config for `action`."""
    if action not in ACTIONS:
        raise ConfigError("--action", f"unknown action {action!r}", f"use one of {', '.join(ACTIONS)}")
    lines = [
        f"# Action config for {action}" + (f" (plugin: {plugin})" if plugin else ""),
        "# Generated by `bosun-plugin-runner --gen-config`; edit the values, then run:",
        f"#   bosun-plugin-runner --plugin {plugin or '<plugin>'} --action {action} \\",
        "#       --config <this file> --status-file /tmp/status.yaml --show-status",
        "pluginConfig:",
        '  MLOPS_BOSUN_PRED_ENV_ID: "pe-1"',
        '  MLOPS_BOSUN_PRED_ENV_TYPE: "ExternalCommand"',
        '  MLOPS_BOSUN_PRED_ENV_PLATFORM: "os"',
        "  MLOPS_BOSUN_PRED_ENV_ENABLE_MONITORING: false",
        '  mlopsUrl: "http://127.0.0.1:8000"',
        "  # Plugin settings may go here too, or in the --private-config file.",
    ]
    # Every template has peInfo, as the documented runner's samples do.
    lines += [
        "peInfo:",
        '  id: "pe-1"',
        '  name: "Sample-PE"',
        '  description: "some description"',
        '  createdOn: "2026-01-01T00:00:00Z"',
        '  createdBy: "someone"',
        "  # Deployments whose status pe_status should report (ids or deploymentInfo mappings).",
        '  deployments: ["deployment-1"]',
        "  keyValueConfig: {}",
    ]
    if action in ACTIONS_WITH_DEPLOYMENT:
        lines += [
            "deploymentInfo:",
            '  id: "deployment-1"',
            '  name: "deployment-1"',
            '  description: "Deployment 1"',
            '  modelId: "model-A"',
        ]
        if action in ACTIONS_WITH_MODEL:
            lines += [
                "  # Path of the model package the agent placed for this action.",
                '  modelArtifact: "/tmp/model-A.dhpkg"',
                '  modelFormat: "sklearn"',
            ]
        if action == BosunPluginActions.DEPLOYMENT_REPLACE_MODEL:
            lines += ['  newModelId: "model-B"']
        lines += ['  modelExecutionType: "dedicated"', "  keyValueConfig: {}"]
    return "\n".join(lines) + "\n"
